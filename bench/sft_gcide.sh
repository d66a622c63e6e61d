#!/usr/bin/env bash
# Instruction tuning measured (docs/results.md, "Instruction tuning"): a decoder pretrained on stdlib,
# scored zero-shot on gcide_definitions, then instruction-tuned on it in full and with LoRA, each scored
# again. Usage: bench/sft_gcide.sh BASE_CKPT [OUT] (OUT default logs/sft_gcide); extra train.py
# overrides in SFT_ARGS. Needs `make data-debian` (data/sft/gcide_definitions). One thread per run.
set -euo pipefail
base=${1:?give the pretraining checkpoint, e.g. logs/pretrain/runs/<run>/checkpoints/last.ckpt}
out=${2:-logs/sft_gcide}
python=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
steps=${SFT_STEPS:-2000}
common=(model=gpt_tiny data=gcide_definitions "model.init_from=$base" "trainer.max_steps=$steps"
        trainer.val_check_interval=500 callbacks.rich_progress_bar=null trainer.enable_progress_bar=false)

"$python" eval.py "ckpt_path=$base" data=gcide_definitions "hydra.run.dir=$out/before" trainer.enable_progress_bar=false
"$python" train.py "${common[@]}" optim.lr=5e-4 "hydra.run.dir=$out/full" ${SFT_ARGS:-}
"$python" eval.py "ckpt_path=$out/full/checkpoints/last.ckpt" "hydra.run.dir=$out/full_eval" trainer.enable_progress_bar=false
"$python" train.py "${common[@]}" peft=lora "hydra.run.dir=$out/lora" ${SFT_ARGS:-}
"$python" eval.py "ckpt_path=$out/lora/checkpoints/last.ckpt" "hydra.run.dir=$out/lora_eval" trainer.enable_progress_bar=false
for run in before full_eval lora_eval; do echo "$run: $(cat "$out/$run/metrics.json" | tr -d '\n ')"; done
