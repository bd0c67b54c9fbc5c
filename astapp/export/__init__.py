"""A trained run leaves the machine: ONNX files (checked against PyTorch), the model zip with its browser
demo, and the model card pushed to the Hugging Face Hub.
"""
