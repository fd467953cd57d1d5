"""Reading VNN-COMP instance and ground-truth csvs."""

import pytest

from exactverify.core.errors import InputError
from exactverify.metrics.bench import read_ground_truth


def test_ground_truth_verdicts_are_read_in_lower_case(tmp_path):
    path = tmp_path / "truth.csv"
    path.write_text("network,property,expected\nnets/a.onnx,props/p.vnnlib, SAT\nb.onnx,q.vnnlib,unsat\n")
    assert read_ground_truth(path) == {("a.onnx", "p.vnnlib"): "sat", ("b.onnx", "q.vnnlib"): "unsat"}


def test_a_short_ground_truth_row_is_bad_input_naming_its_line(tmp_path):
    path = tmp_path / "truth.csv"
    path.write_text("network,property,expected\na.onnx,p.vnnlib,sat\nb.onnx,q.vnnlib\n")
    with pytest.raises(InputError, match="line 3"):
        read_ground_truth(path)
