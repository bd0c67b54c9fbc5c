"""The training engine: dataset -> features -> Trainer -> exported model, with the fast modes.

`pipeline.train` is the one training entry of the engine; `stages` announces stages and progress and
honours a stop (shared with cross-validation); `trainer` builds the Trainer and its callbacks;
`trainer_utils` holds datasets, collator, loss and strict weight loading; `fastmodes` runs the frozen
part once; `devices` picks CUDA or CPU and the precision. No gradio, no sessions, no queue.
"""
