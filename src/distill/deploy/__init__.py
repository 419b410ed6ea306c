"""The student as a product: predict a file, export to ONNX, its model card."""
