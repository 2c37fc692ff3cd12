"""Draw the README's picture, docs/profile.svg: the profiles of two reference models.

The autoencoder squeezes 784 values through its 32-wide latent (a bottleneck); the
U-Net's inner layer is 256 wide, yet its skips keep 3072 alive across it (no
bottleneck). Both are exported from code (models/reference.py), then audited with
``--plot``. Run from the repository's root after ``pip install -e '.[test,torch]'``:

    python docs/pictures.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.reference import MODELS, export_reference  # noqa: E402

#: The models drawn, top to bottom.
DRAWN = ("autoencoder", "unet")


def main(target: Path = ROOT / "docs" / "profile.svg") -> None:
    """Export the models into a scratch folder and plot them, named by file name only."""
    with tempfile.TemporaryDirectory() as folder:
        for name in DRAWN:
            export_reference(MODELS[name], Path(folder) / f"{name}.onnx", dynamo=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "onnx_flow",
                "audit",
                *(f"{name}.onnx" for name in DRAWN),
                "--plot",
                str(target.resolve()),
                "--format",
                "json",
            ],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            check=False,  # exit 1: the autoencoder's bottleneck
        )
    print(target)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "profile.svg")
