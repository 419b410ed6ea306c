"""ZeroGen: prompts -> generate. method.py is what the shared stages see; prompts.py and generate.py are its stages."""
