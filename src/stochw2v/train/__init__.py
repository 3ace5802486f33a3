"""Training: recipes as dataclasses (`recipe.py`, `tasks.py`), the loop (`trainer.py`), contrastive
pre-training (`pretrain.py`, `contrastive.py`, `quantizer.py`, `masking.py`), CTC fine-tuning
(`finetune.py`, `growing.py`), and the pieces around them (`optim.py`, `distributed.py`,
`usable_data.py`). Checkpoints and run folders are file formats: `formats/`."""
