"""``recllm impute`` and every ``recllm bench`` command: a missing input path, a bad seed and an output path that
cannot be created each give ONE line naming the argument and what to do (exit 2), before any work or model load.

The work is replaced by :class:`Reached` (raised where each command's work starts: ``set_threads`` after its
argument checks, the model loader, ``run_scaling``), so a check that is missing shows up as Reached, not as hours.
"""

import pytest

import recllm.utils

from recllm.cli import main


class Reached(BaseException):  # not an Exception: recllm.cli.main must not turn it into an error line
    """The command got past its argument checks into its work."""


def _reached(*args, **kwargs):
    raise Reached


def _no_download(*args, **kwargs):
    from recllm.data.dataset import DataError

    raise DataError("no downloads in the tests")


@pytest.fixture(autouse=True)
def no_work(monkeypatch, placeholder_data):
    import recllm.bench.scaling
    import recllm.data.loaders.base
    import recllm.llm
    import recllm.llm.backbone
    import recllm.utils

    monkeypatch.setattr(recllm.data.loaders.base, "download_files", _no_download)
    monkeypatch.setattr(recllm.data.loaders.base, "download_archive", _no_download)
    monkeypatch.setattr(recllm.utils, "set_threads", _reached)
    monkeypatch.setattr(recllm.llm.backbone, "load_causal_lm", _reached)
    monkeypatch.setattr(recllm.llm, "load_causal_lm", _reached)
    monkeypatch.setattr(recllm.bench.scaling, "run_scaling", _reached)


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n,3\n4,\n5,6\n")
    return path


def command(name, tmp_path, table):
    """The command line of ``name`` that passes every check (the work then starts)."""
    if name == "impute":
        return ["impute", str(table), "--out", str(tmp_path / "filled.csv")]
    return ["bench", *name.split()[1:], "--allow-dirty", "--out", str(tmp_path / "report.md")]


COMMANDS = ["impute", "bench impute", "bench learn", "bench trsr", "bench impute-numbers", "bench learn-catalogue",
            "bench learn-patience", "bench foundation", "bench foundation-baselines", "bench scaling"]
SEED_OPTIONS = {"impute": "--seed", "bench impute": "--seeds", "bench learn": "--seeds", "bench trsr": "--seeds",
                "bench impute-numbers": "--seeds", "bench learn-catalogue": "--seed",
                "bench learn-patience": "--seeds",
                "bench foundation-baselines": "--seed"}
BAD_SEEDS = [["-1"], [str(2**32)], ["x"]]
BAD_SEED_LISTS = [[], ["1", "1"]]
# command -> (the option naming an input path, the line with a path that does not exist)
INPUTS = {"impute": ("table", lambda argv, path: [argv[0], path, *argv[2:]]),
          "bench impute": ("--model", lambda argv, path: argv + ["--model", path]),
          "bench learn": ("--recbole-run", lambda argv, path: argv + ["--recbole-run", path])}


def assert_one_line(capsys, name, option):
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"recllm {name}: error: ") and option in lines[0] and "; " in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("name", COMMANDS)
def test_good_arguments_reach_the_work(name, tmp_path, table):
    """The harness's control: without a mistake the command gets to its work (so the tests below can fail)."""
    argv = command(name, tmp_path, table)
    if name in SEED_OPTIONS:
        argv += [SEED_OPTIONS[name], "0" if name == "bench trsr" else "3"]  # trsr's seeds: 0, 0 1, 0 1 2
    with pytest.raises(Reached):
        main(argv)


@pytest.mark.parametrize("name", COMMANDS)
def test_an_out_folder_that_can_be_created_is_accepted(name, tmp_path, table):
    """recllm.outputs' rule: an --out folder that does not exist yet is created (when it can be) at the write."""
    argv = [a.replace(str(tmp_path), str(tmp_path / "new" / "folder")) if a.startswith(str(tmp_path / "filled"))
            or a.startswith(str(tmp_path / "report")) else a for a in command(name, tmp_path, table)]
    with pytest.raises(Reached):
        main(argv)
    assert not (tmp_path / "new").exists()  # the checks create nothing


@pytest.mark.parametrize("name", COMMANDS)
def test_an_out_folder_that_cannot_be_created(name, tmp_path, table, capsys):
    (tmp_path / "afile").write_text("x")
    argv = [a.replace(str(tmp_path), str(tmp_path / "afile" / "sub")) if a.startswith(str(tmp_path / "filled"))
            or a.startswith(str(tmp_path / "report")) else a for a in command(name, tmp_path, table)]
    assert main(argv) == 2
    assert_one_line(capsys, name, "--out")


@pytest.mark.parametrize("name,values", [(n, v) for n in SEED_OPTIONS for v in BAD_SEEDS]
                         + [(n, v) for n, o in SEED_OPTIONS.items() if o == "--seeds" for v in BAD_SEED_LISTS])
def test_a_bad_seed(name, values, tmp_path, table, capsys):
    option = SEED_OPTIONS[name]
    assert main(command(name, tmp_path, table) + [option, *values]) == 2
    assert_one_line(capsys, name, option)


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_an_input_path_that_does_not_exist(name, tmp_path, table, capsys):
    option, replace = INPUTS[name]
    missing = str(tmp_path / "missing" / "input.csv")
    assert main(replace(command(name, tmp_path, table), missing)) == 2
    assert_one_line(capsys, name, missing if option == "table" else option)


@pytest.mark.parametrize("name", ["bench impute", "bench learn", "bench trsr", "bench impute-numbers",
                                  "bench learn-catalogue", "bench learn-patience"])
def test_an_unknown_data_set(name, tmp_path, table, capsys):
    assert main(command(name, tmp_path, table) + ["--datasets", "no-such-data"]) == 2
    assert_one_line(capsys, name, "no-such-data")


# command -> the data set it needs first (bench learn only when named: by default it skips absent ones)
NEEDS_DATA = {"bench impute": "advertising", "bench trsr": "amazon2018-magazine-subscriptions",
              "bench impute-numbers": "advertising", "bench learn-catalogue": "amazon2018-magazine-subscriptions",
              "bench learn-patience": "ml-100k", "bench foundation": "ml-100k", "bench foundation-baselines": "ml-100k"}


@pytest.mark.parametrize("name", sorted(NEEDS_DATA))
def test_data_that_is_not_here_is_one_line_before_any_work(name, tmp_path, table, capsys, monkeypatch):
    """Its files missing (and no download): one line naming the data set, its folder and the fix -- not a model
    load, a probe or a fit first (each would raise Reached), and not a report of nothing."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("RECLLM_DATA", str(empty))
    assert main(command(name, tmp_path, table)) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"recllm {name}: error: data set {NEEDS_DATA[name]!r}") and str(empty) in err, err
    assert "Fix: " in err and not (tmp_path / "report.md").exists()


def test_bench_learn_refuses_a_named_data_set_that_is_not_here_and_a_report_of_none(tmp_path, table, capsys,
                                                                                    monkeypatch):
    """By default bench learn skips the data sets that are absent (with a note in the report); one named with
    --datasets is run or refused, and with none present at all there is no report to write."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("RECLLM_DATA", str(empty))
    assert main(command("bench learn", tmp_path, table) + ["--datasets", "ml-100k"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("recllm bench learn: error: data set 'ml-100k'"), err
    assert main(command("bench learn", tmp_path, table)) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "none of the benchmark's data sets" in err and str(empty) in err, err
    assert not (tmp_path / "report.md").exists()


def _seed_options(parser, found):
    """``{command: seed option}`` of every (sub)command of ``parser`` with a --seed or --seeds option."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                _seed_options(sub, found)
        elif {"--seed", "--seeds"} & set(action.option_strings):
            found[parser.prog] = max(action.option_strings, key=len)
    return found


def test_every_seed_option_is_tested_here():
    """A new command with a seed option must join SEED_OPTIONS (and so test_a_bad_seed)."""
    from recllm.cli import build_parser

    found = _seed_options(build_parser(), {})
    expected = {f"recllm {name}": option for name, option in SEED_OPTIONS.items()}
    assert found == {"recllm": "--seed", **expected}


@pytest.mark.parametrize("value", BAD_SEEDS)
def test_a_bad_top_level_seed(value, capsys):
    from recllm.cli_args import SEED_LIMIT

    assert main(["--seed", *value, "data", "list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("recllm: error: argument --seed: ") and "; " in err, err
    if value != ["x"]:
        assert str(SEED_LIMIT - 1) in err  # the range, in the one line


@pytest.mark.parametrize("name", [n for n in COMMANDS if n != "bench scaling"])
def test_far_more_threads_than_the_machine_has(name, tmp_path, table, capsys):
    """Thousands of OpenMP threads end in a MemoryError at the first model call: refused when the options are
    parsed."""
    assert main(command(name, tmp_path, table) + ["--threads", "99999"]) == 2
    assert_one_line(capsys, name, "--threads")


# command -> the run stores it keeps beside its report (read, or refused, before any download, data load or model)
STORES = {"bench impute": [".runs.jsonl"], "bench learn": [".runs.jsonl", ".content.jsonl", ".recbole.json"],
          "bench trsr": [".runs.jsonl"], "bench impute-numbers": [".runs.jsonl"],
          "bench learn-patience": [".runs.jsonl"]}


@pytest.mark.parametrize("name,suffix", [(n, s) for n, suffixes in STORES.items() for s in suffixes])
@pytest.mark.parametrize("content", [b"not json\n", b"\xff\xfe binary"])
def test_a_damaged_run_store_is_one_line_before_any_work(name, suffix, content, tmp_path, table, capsys):
    """A store beside the report that is not one: one line naming it (not a traceback after the model loaded or
    the data was read, and not silently replaced by the next stored run)."""
    store = tmp_path / f"report{suffix}"
    store.write_bytes(content)
    assert main(command(name, tmp_path, table)) == 2
    assert_one_line(capsys, name, str(store))
    assert store.read_bytes() == content


@pytest.fixture
def campaign(tmp_path):
    """A trsr campaign's stores beside the report, as trsr-agreement reads them."""
    (tmp_path / "trsr.runs.jsonl").write_text("")
    return tmp_path / "trsr.runs.jsonl"


def test_trsr_agreement_reaches_its_work(campaign, tmp_path, table):
    with pytest.raises(Reached):
        main(command("bench trsr-agreement", tmp_path, table))


@pytest.mark.parametrize("damaged", ["trsr.runs.jsonl", "trsr.texts.jsonl", "report.runs.jsonl"])
def test_trsr_agreement_reads_its_stores_before_the_model(damaged, campaign, tmp_path, table, capsys):
    (tmp_path / damaged).write_bytes(b"\xff\xfe binary")
    assert main(command("bench trsr-agreement", tmp_path, table)) == 2
    assert_one_line(capsys, "bench trsr-agreement", damaged)


def test_trsr_reads_its_carried_summaries_before_the_model(tmp_path, table, capsys, monkeypatch):
    import recllm.bench.trsr.run

    monkeypatch.setattr(recllm.utils, "set_threads", lambda *a, **k: None)  # on to run_benchmark
    monkeypatch.setattr(recllm.bench.trsr.run, "load_causal_lm", _reached)
    (tmp_path / "report.texts.jsonl").mkdir()
    assert main(command("bench trsr", tmp_path, table)) == 2
    assert_one_line(capsys, "bench trsr", "report.texts.jsonl")


@pytest.mark.parametrize("name,option", [("bench trsr", "--precision"), ("bench trsr", "--score-dtype"),
                                         ("bench impute", "--precision")])
def test_a_wrong_precision_names_its_option_before_any_work(name, option, tmp_path, table, capsys):
    assert main(command(name, tmp_path, table) + [option, "bogus"]) == 2
    assert_one_line(capsys, name, f"({option})")


# command -> (extra options, a plot its report links beside report.md)
PLOTS = {"bench impute": ([], "report-downstream.png"),
         "bench learn": (["--datasets", "ml-100k"], "report-ml-100k.png")}


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_a_file_recllm_did_not_make_where_a_plot_goes_is_refused_before_any_work(name, tmp_path, table, capsys):
    """The plots are written when the report is, after hours of runs: a user's file of that name is named now (and
    left as it is), not replaced at the end."""
    extra, plot = PLOTS[name]
    (tmp_path / plot).write_bytes(b"\x89PNG\r\n\x1a\n someone's picture")
    assert main(command(name, tmp_path, table) + extra) == 2
    assert_one_line(capsys, name, plot)
    assert (tmp_path / plot).read_bytes() == b"\x89PNG\r\n\x1a\n someone's picture"
    with pytest.raises(Reached):  # the user's word
        main(command(name, tmp_path, table) + extra + ["--overwrite"])


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_recllms_own_plot_is_replaced_by_a_rerun(name, tmp_path, table):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from recllm.eval.report import save_plot

    extra, plot = PLOTS[name]
    save_plot(plt.subplots()[0], tmp_path / plot)
    with pytest.raises(Reached):
        main(command(name, tmp_path, table) + extra)


@pytest.mark.parametrize("name", ["bench impute-numbers", "bench learn-catalogue", "bench trsr",
                                  "bench trsr-agreement"])
def test_datasets_naming_none_is_one_line_not_a_report_of_nothing(name, tmp_path, table, capsys):
    """`--datasets` with no name ran nothing and replaced the report with an empty one (trsr after loading the
    model)."""
    (tmp_path / "trsr.runs.jsonl").write_text("")  # trsr-agreement's campaign store
    assert main(command(name, tmp_path, table) + ["--datasets"]) == 2
    assert_one_line(capsys, name, "--datasets")
    assert not (tmp_path / "report.md").exists()
