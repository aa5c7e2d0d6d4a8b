"""Between prompts and train: the parts llmrec adds to a causal LM, which training builds and every
later stage loads back with the run (`llmrec.run_dir.RunDir.load_model`): item rows anchored to
their text (`anchored.py`, `model.item_rows: anchored`) and time-gap embeddings (`time_gaps.py`,
`prompts.time: gaps`)."""
