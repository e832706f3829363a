"""`autotm-graph` as a user types it: exit codes, one-line errors, files only on success."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import onnx
import pytest
from autotm_graph import zoo
from autotm_graph.cli import main

from tests.handmade import write_tiny_mlp


def test_list_prints_every_network(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "--list"]) == 0
    out = capsys.readouterr().out
    for name in zoo.NETWORKS:
        assert f"\n{name} " in out
    vgg19 = next(line for line in out.splitlines() if line.startswith("vgg19 "))
    assert vgg19.split()[1:5] == ["224x224", "2048", "143.67M", "47"]


def test_list_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "--list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows.keys() == zoo.NETWORKS.keys()
    assert rows["resnet50"]["parameters"] == 25_557_032
    assert rows["inception_v4"]["image_size"] == 299
    assert rows["densenet264-tiny"]["size"] == "tiny"


def test_zoo_writes_a_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "net.onnx"
    argv = ["zoo", "resnet50-tiny", "--batch", "3", "--image-size", "40", "--classes", "7"]
    assert main([*argv, "-o", str(out)]) == 0
    model = onnx.load(out)
    onnx.checker.check_model(model)
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [3, 3, 40, 40]
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [3, 7]
    err = capsys.readouterr().err
    assert "wrote" in err and "resnet50-tiny batch 3" in err
    assert main(["zoo", "resnet50-tiny", "-q", "-o", str(out)]) == 0
    assert capsys.readouterr().err == ""


def test_zoo_to_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["zoo", "vgg19-tiny", "--weights", "embed", "-q", "-o", "-"]) == 0
    model = onnx.load_from_string(capsysbinary.readouterr().out)
    assert len(model.graph.initializer) == len(zoo.builder("vgg19-tiny").params)


def test_unknown_network_is_exit_2_without_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.onnx"
    assert main(["zoo", "alexnet", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "network 'alexnet': expected one of vgg19, vgg416, resnet50" in err
    assert "densenet264-tiny" in err
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["zoo"], "expected a network NAME or --list"),
        (["zoo", "vgg19-tiny"], "expected -o OUT.onnx"),
        (["zoo", "vgg19", "--image-size", "16", "-o", "{out}"], "--image-size 16"),
        (["zoo", "vgg19-tiny", "--batch", "0", "-o", "{out}"], "--batch: expected a positive"),
        (["zoo", "vgg416", "--weights", "embed", "-o", "{out}"], "expected --weights seeded"),
        (["info", "{missing}"], "expected an existing ONNX file"),
        (["info", "--top", "-1", "{missing}"], "--top: expected a non-negative"),
        (["zoo", "vgg19-tiny", "--weights", "random"], "invalid choice"),
    ],
)
def test_bad_input_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    out, missing = tmp_path / "out.onnx", tmp_path / "missing.onnx"
    argv = [a.format(out=out, missing=missing) for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_info_text_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_tiny_mlp(tmp_path / "mlp.onnx")
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert "network     tiny_mlp (training graph, batch 4)" in text
    assert "2,280 B" in text
    assert main(["info", "--json", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["peak_live_bytes"] == 2280
    assert len(summary["lifetimes"]) == 25


def test_info_reads_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = zoo.build("densenet264-tiny").SerializeToString()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(["info", "--json", "-"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["file"] == "-"
    assert summary["network"] == "densenet264-tiny"


def test_verbose_prints_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\xffjunk")
    assert main(["info", str(junk)]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["info", "-v", str(junk)]) == 2
    assert "Traceback" in capsys.readouterr().err
    assert main(["-v", "info", str(junk)]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["zoo", "--help"], ["info", "--help"]):
        assert main(argv) == 0
        assert "exit codes:" in capsys.readouterr().out


def test_train_reports_a_missing_builder(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import autotm_graph

    monkeypatch.setitem(sys.modules, "autotm_graph.train", None)
    monkeypatch.delattr(autotm_graph, "train", raising=False)
    assert main(["train", "in.onnx", "--batch", "2", "-o", "out.onnx"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "training-graph builder (autotm_graph.train.command) is not part of this build" in err
    assert main(["zoo", "--list"]) == 0  # the rest keeps working


def test_train_subcommand_is_wired(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("autotm_graph.train.command")
    assert main(["train", "--help"]) == 0
    assert "--batch" in capsys.readouterr().out
    model, out = tmp_path / "m.onnx", tmp_path / "t.onnx"
    assert main(["zoo", "vgg19-tiny", "-q", "-o", str(model)]) == 0
    assert main(["train", str(model), "--batch", "2", "-o", str(out)]) == 0
    assert main(["info", "--json", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["graph"] == "training" and summary["batch"] == 2
