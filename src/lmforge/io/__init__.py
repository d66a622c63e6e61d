"""Reading and writing what runs leave behind: checkpoints (atomic writes, distributed folders,
consolidation), starting weights (``model.init_from``), tuning-method files, Hugging Face folders."""
