"""The AST model: where a checkpoint comes from, loading it with a new head, LoRA adapters, the exported folder.

`sources` says what a model source is without torch; `loading` builds the model (Hub id, folder,
scratch); `lora` adds and merges adapters; `folder` writes the folder plain transformers loads.
"""
