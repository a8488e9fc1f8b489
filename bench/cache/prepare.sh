#!/usr/bin/env bash
# Builds the benchmark's venv-like tree once: real wheels from PyPI (pip download, no
# dependencies, CPython 3.11 manylinux builds), each unpacked into one site-packages directory,
# until the tree holds about 1 GB in about 50,000 files. Kept under bench/cache/.data/ (ignored
# by git); a second run reuses it. Prints the tree's path, size and file count.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
data=${BENCH_CACHE_DATA:-$here/.data}
tree=$data/tree/venv/lib/python3.11/site-packages
# Big binary wheels for the bytes, many-module pure-Python ones for the file count.
wheels=(
  numpy==2.1.3 scipy==1.14.1 pandas==2.2.3 matplotlib==3.9.3 scikit-learn==1.5.2
  sympy==1.13.3 networkx==3.4.2 django==5.1.4 botocore==1.35.76 plotly==5.24.1
  azure-mgmt-network==28.0.0 azure-mgmt-compute==33.0.0 jupyterlab==4.3.3 kubernetes==31.0.0
  statsmodels==0.14.4 pillow==11.0.0 sqlalchemy==2.0.36 grpcio==1.68.1
  google-api-python-client==2.154.0 babel==2.16.0 ansible-core==2.17.7 transformers==4.47.0
  google-cloud-aiplatform==1.74.0 mypy==1.13.0 moto==5.0.22 faker==33.1.0 pygments==2.18.0
  setuptools==75.6.0 pip==24.3.1 azure-mgmt-web==7.3.1 azure-mgmt-sql==3.0.1
  azure-mgmt-resource==23.2.0 azure-mgmt-storage==21.2.1 azure-mgmt-containerservice==33.0.0
)

if [[ -f $data/tree/.complete ]]; then
  echo "tree: $data/tree (cached)"
else
  mkdir -p "$data/wheels" "$tree"
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.11 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 --platform any -d "$data/wheels" "${wheels[@]}"
  for wheel in "$data"/wheels/*.whl; do
    unzip -q -o "$wheel" -d "$tree"
  done
  mkdir -p "$data/tree/venv/bin"
  # As `python3 -m venv` makes them: the interpreter links outside the tree.
  ln -sfn /usr/bin/python3 "$data/tree/venv/bin/python3.11"
  ln -sfn python3.11 "$data/tree/venv/bin/python3"
  ln -sfn python3 "$data/tree/venv/bin/python"
  ln -sfn lib "$data/tree/venv/lib64"
  touch "$data/tree/.complete"
fi
bytes=$(du -sb "$data/tree/venv" | cut -f1)
files=$(find "$data/tree/venv" -type f | wc -l)
echo "tree: $data/tree/venv: $((bytes / 1000000)) MB in $files files"
