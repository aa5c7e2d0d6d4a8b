"""After run_dir: fine-tuning (LoRA or full, with Accelerate) of the causal LM on the prompt datasets, into
a run directory; `loop.fit` is the loop, `finetune.py` the modes, `objectives.py` the losses."""
