"""``morph features``: outputs, formats, failures and exit codes."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from morph.cli.main import main


@pytest.fixture()
def small(data):
    return [str(p) for p in sorted((data / "swc" / "small").glob("neurom_*.swc"))]


def test_csv_wide(tmp_path, small, capsys):
    out = tmp_path / "t.csv"
    assert main(["-q", "features", *small, "-o", str(out)]) == 0
    df = pd.read_csv(out, index_col=0)
    assert len(df) == len(small)
    assert "axon.total_length" in df.columns
    assert df.loc["neurom_simple", "axon.total_length"] == pytest.approx(15.0)


def test_without_output_the_long_table_goes_to_stdout(tmp_path, small, capsys):
    import io

    assert main(["-q", "features", *small[:2]]) == 0
    out, err = capsys.readouterr()
    printed = pd.read_csv(io.StringIO(out))
    assert list(printed.columns) == ["cell", "compartment", "feature", "value"] and err == ""
    assert main(["-q", "features", *small[:2], "-o", str(tmp_path / "l.csv"), "--long"]) == 0
    written = pd.read_csv(tmp_path / "l.csv")
    pd.testing.assert_frame_equal(printed, written)
    assert set(printed["cell"]) == {"neurom_Neuron", "neurom_Single_apical"}


def test_refuses_overwrite_then_force(tmp_path, small, capsys):
    out = tmp_path / "t.csv"
    out.write_text("keep")
    assert main(["-q", "features", small[0], "-o", str(out)]) == 2
    assert out.read_text() == "keep"
    assert "exists" in capsys.readouterr().err
    assert main(["-q", "features", small[0], "-o", str(out), "--force"]) == 0
    assert out.read_text() != "keep"


def test_failed_file_reported_rest_complete(tmp_path, small, capsys):
    bad = tmp_path / "bad.swc"
    bad.write_text("1 1 0 0 0 1 -1\n2 3 0 zz 0 1 1\n")
    out = tmp_path / "t.csv"
    code = main(["-q", "features", small[0], str(bad), str(tmp_path / "nope.swc"), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert "bad.swc:2" in err and "nope.swc" in err and "2 of 3 file(s) failed" in err
    assert len(pd.read_csv(out, index_col=0)) == 1


def test_long_parquet_json_and_selection(tmp_path, small):
    pq = tmp_path / "t.parquet"
    args = ["-q", "features", small[0], "--compartments", "axon", "soma", "--features", "total_length", "surface_area"]
    assert main([*args, "-o", str(pq), "--long"]) == 0
    df = pd.read_parquet(pq)
    assert list(df.columns) == ["cell", "compartment", "feature", "value"]
    assert set(df.compartment) == {"axon", "soma"}
    js = tmp_path / "t.json"
    assert main([*args, "-o", str(js)]) == 0
    d = json.loads(js.read_text())
    assert set(next(iter(d.values()))) == {"axon.total_length", "soma.surface_area"}


def test_nm_compatible_switch(tmp_path, data):
    f = str(data / "swc" / "small" / "neurom_Neuron.swc")
    a, n = tmp_path / "a.csv", tmp_path / "n.csv"
    assert main(["-q", "features", f, "--features", "max_branch_order", "-o", str(a)]) == 0
    assert main(["-q", "features", f, "--features", "max_branch_order", "--nm-compatible", "-o", str(n)]) == 0
    va = pd.read_csv(a, index_col=0)["axon.max_branch_order"].iloc[0]
    vn = pd.read_csv(n, index_col=0)["axon.max_branch_order"].iloc[0]
    assert (va, vn) == (11, 10)


def test_list_and_bad_input(tmp_path, capsys):
    assert main(["features", "--list"]) == 0
    out = capsys.readouterr().out
    assert "total_length" in out and "early_branch_path" in out and "diameter_mean_20" in out
    assert main(["features", "x.swc", "-o", str(tmp_path / "t.xlsx")]) == 2
    assert "unknown table format" in capsys.readouterr().err
    assert main(["features", "-o", str(tmp_path / "t.csv")]) == 2
    assert main(["-q", "features", "x.swc", "--features", "nonsense", "-o", str(tmp_path / "t.csv")]) == 2
    assert "unknown feature" in capsys.readouterr().err
    assert main(["-q", "features", "x.swc", "--compartments", "axonn", "-o", str(tmp_path / "t.csv")]) == 2
    assert "unknown compartment" in capsys.readouterr().err


def test_reasons_file(tmp_path, data):
    out, why = tmp_path / "t.csv", tmp_path / "why.csv"
    f = str(data / "swc" / "small" / "neurom_simple.swc")
    assert main(["-q", "features", f, "--compartments", "ais", "-o", str(out), "--reasons", str(why)]) == 0
    r = pd.read_csv(why)
    assert (r.column == "ais.diameter_mean_20").any()
    assert r.reason.str.contains("shorter than the 20 um window").any()


def test_quiet_prints_nothing_on_success(tmp_path, small, capsys):
    from morph import progress

    try:
        assert main(["features", "-q", *small[:2], "-o", str(tmp_path / "t.csv")]) == 0
        assert capsys.readouterr().err == ""
    finally:
        progress.set_quiet(False)
