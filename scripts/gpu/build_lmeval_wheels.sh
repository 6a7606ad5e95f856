#!/usr/bin/env bash
# Here (not on the GPU machine), in the project root: the wheels lm-evaluation-harness 0.4.13 needs
# on the GPU machine beyond its image and the vLLM set (../shared/gpu/build_wheelhouse.sh), into the
# git-ignored .whl/ (~20 MB). Pure-Python sdists (word2number, sqlitedict, rouge-score) are built into
# wheels here. On the GPU machine, in a call that carries .whl:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
# (the same /tmp/site as vLLM; PYTHONPATH=/tmp/site), then `lm_eval --model vllm ...`.
# Not yet run on the GPU machine (2026-12-01): a first call should check `python3 -c "import lm_eval.models.vllm_causallms"`.
set -euo pipefail
PKGS=(lm_eval==0.4.13 datasets==5.2.0 evaluate==0.4.6 multiprocess==0.70.19 pytablewriter==1.2.1
      DataProperty==1.1.1 mbstrdecoder==1.1.5 pathvalidate==3.3.1 tabledata==1.3.5 tcolorpy==0.1.7
      typepy==2.0.0 chardet==7.7.0 pytz==2026.6 nltk==3.10.4 more-itertools==11.2.1)
SDISTS=(word2number==1.1 sqlitedict==2.1.0 rouge-score==0.1.2)
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d .whl "${PKGS[@]}"
python3 -m pip wheel -q --no-deps -w .whl "${SDISTS[@]}"
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || { [ -d .git ] && echo '/.whl/' >> .git/info/exclude; } || true
ls .whl | wc -l; du -sh .whl
