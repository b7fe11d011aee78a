#!/usr/bin/env bash
# Installs everything longrec needs on a Debian 12 machine, idempotently:
# Debian packages (compilers, Open MPI, HDF5, Boost, fmt, GoogleTest, ...) and a
# Python virtual environment `.venv` holding the pinned torch wheel (LibTorch).
# Nothing is fetched from anywhere but Debian's archive and PyPI.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The single place where the LibTorch version is pinned. 2.11.0 on PyPI is built
# for CUDA 13.0, the toolkit of the GPU machines longrec targets; the same wheel
# runs on CPU-only machines.
TORCH_VERSION="${LONGREC_TORCH_VERSION:-2.11.0}"
# transformers, safetensors and sentencepiece: the outside references the Llama blocks, the
# safetensors reader and the tokenizer are tested against (issue 15); matplotlib: scripts/plot_run.py;
# scipy: the power-law fits of scripts/sweep_fit.py (issue 17; 1.17.1, the newest for Python 3.11);
# tensorboard: scripts/tensorboard_export.py's event files and its test's reader (EventAccumulator).
PY_PACKAGES=("torch==${TORCH_VERSION}" "numpy==2.2.6" "h5py==3.14.0" "transformers==4.57.1" "safetensors==0.6.2"
  "sentencepiece==0.2.1" "matplotlib==3.10.7" "scipy==1.17.1" "tensorboard==2.20.0")

DEB_PACKAGES=(
  build-essential cmake ninja-build ccache git pkg-config
  python3 python3-venv python3-pip
  libopenmpi-dev openmpi-bin
  libhdf5-dev hdf5-tools zlib1g-dev
  libboost-program-options-dev libfmt-dev
  libgtest-dev googletest
  libsentencepiece-dev
  nlohmann-json3-dev
  # curl: scripts/demo.sh asks `longrec serve` one HTTP request
  libcpp-httplib-dev wrk curl
  clang libclang-rt-14-dev
  # the Slurm test (tests/launch/slurm_cluster.sh): a one-machine cluster of Debian's Slurm 22.05
  slurm-wlm munge
)

step() { echo "[setup] $*"; }
fail() { echo "[setup] FAILED at step: $1" >&2; exit 1; }
trap 'fail "${CURRENT_STEP:-unknown}"' ERR

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

CURRENT_STEP="Debian packages"
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  step "Debian packages present"
fi

CURRENT_STEP="Python virtual environment (.venv)"
VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  step "creating $VENV"
  python3 -m venv "$VENV"
fi

CURRENT_STEP="pinned Python packages (torch ${TORCH_VERSION})"
stamp="$VENV/.longrec-packages"
want="${PY_PACKAGES[*]}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  step "installing ${want} into .venv (the torch wheel is large; this takes minutes once)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "${PY_PACKAGES[@]}"
  echo "$want" > "$stamp"
else
  step "Python packages present: ${want}"
fi

CURRENT_STEP="checking LibTorch"
"$VENV/bin/python" -c 'import torch; print("[setup] torch", torch.__version__, "cmake prefix", torch.utils.cmake_prefix_path)'
step "done"
