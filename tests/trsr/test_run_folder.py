"""``read_run`` checks a ``recllm trsr train`` run folder before anything is loaded: a missing, cut, foreign or
inconsistent file gives one UserInputError naming the folder and the file and saying how to get a sound run."""

import json

import pytest
import torch
from safetensors.torch import save_file

from recllm.errors import UserInputError
from recllm.run_folder import MissingRunFileError
from recllm.trsr import TRSRConfig
from recllm.trsr.run import read_run


def _write_run(folder, adapter="best"):
    (folder / "sft" / adapter).mkdir(parents=True)
    config = TRSRConfig(seed=3, item_text_columns=("title",))
    (folder / "trsr_config.json").write_text(json.dumps({"data": "ml-100k", "model": None,
                                                         "config": config.to_dict()}))
    (folder / "sft" / adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    save_file({"lora_A.weight": torch.zeros(2, 8), "lora_B.weight": torch.ones(8, 2)},
              str(folder / "sft" / adapter / "adapter_model.safetensors"))
    if adapter != "best":
        (folder / "sft" / adapter / "trainer_state.json").write_text("{}")  # what makes a checkpoint complete
    return folder


def test_a_sound_run_reads_back(tmp_path):
    run = read_run(_write_run(tmp_path / "run"))
    assert (run.data, run.model, run.adapter) == ("ml-100k", None, tmp_path / "run" / "sft" / "best")
    assert run.config.seed == 3 and run.config.item_text_columns == ("title",) and not run.config.fine_tune
    assert run.config.to_dict()["ranker"] == TRSRConfig().to_dict()["ranker"]
    assert read_run(_write_run(tmp_path / "ckpt", "checkpoint-40")).adapter.name == "checkpoint-40"


def _edit_config(folder, edit):
    path = folder / "trsr_config.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


def _cut(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


ADAPTER = "sft/best/adapter_model.safetensors"
DAMAGE = {  # what is done to the run -> (the file named, a phrase of the message)
    "config not JSON": (lambda r: _cut(r / "trsr_config.json"), "trsr_config.json", "is not valid JSON"),
    "config without a data set": (lambda r: _edit_config(r, lambda s: {**s, "data": ""}), "trsr_config.json",
                                  "has no data set name"),
    "config missing the ranker": (
        lambda r: _edit_config(r, lambda s: {**s, "config": {k: v for k, v in s["config"].items() if k != "ranker"}}),
        "trsr_config.json", "missing field 'ranker'"),
    "config with an unknown setting": (
        lambda r: _edit_config(r, lambda s: {**s, "config": {**s["config"], "seed": 1, "summarizer": {
            **s["config"]["summarizer"], "warp": 9}}}),
        "trsr_config.json", "TRSR settings this recllm cannot use"),
    "adapter weights cut short": (lambda r: _cut(r / ADAPTER), ADAPTER, "is cut short"),
    "adapter weights replaced by text": (lambda r: (r / ADAPTER).write_text("not tensors"), ADAPTER, "cut short"),
    "adapter config not JSON": (lambda r: (r / "sft/best/adapter_config.json").write_text("{peft"),
                                "sft/best/adapter_config.json", "is not valid JSON"),
    "adapter config of another program": (lambda r: (r / "sft/best/adapter_config.json").write_text("{}"),
                                          "sft/best/adapter_config.json", "not a peft adapter config"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_file_is_named_with_the_folder(tmp_path, case):
    damage, name, phrase = DAMAGE[case]
    run = _write_run(tmp_path / "run")
    damage(run)
    with pytest.raises(UserInputError) as err:
        read_run(run)
    msg = str(err.value)
    assert "\n" not in msg and phrase in msg, msg
    assert f"broken TRSR run {run}: {name}" in msg and str(run / name) in msg
    assert f"recllm trsr train --data <name> --out {run}" in msg


def test_missing_files_and_adapters(tmp_path):
    run = _write_run(tmp_path / "run")
    (run / ADAPTER).unlink()
    with pytest.raises(MissingRunFileError, match=r"not a complete TRSR run: sft/best/adapter_model.safetensors"):
        read_run(run)
    for child in (run / "sft" / "best").iterdir():
        child.unlink()
    (run / "sft" / "best").rmdir()
    with pytest.raises(UserInputError, match=r"sft holds no trained adapter"):
        read_run(run)
    (run / "sft").rmdir()
    with pytest.raises(UserInputError, match=r"sft is missing"):
        read_run(run)
    with pytest.raises(FileNotFoundError, match=r"does not exist, so it is not a TRSR run"):
        read_run(tmp_path / "nowhere")
