"""Prompting shared by every method: few-shot scoring prompts, label-conditioned generation requests (ZeroGen's
format), seq2seq worked examples and the arithmetic answer checker."""
