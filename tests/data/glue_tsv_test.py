"""GLUE TSV readers: the real files (shared/data/MANIFEST.md) and generated ones."""

import collections
import logging

import numpy as np
import pytest

from bert_adapters.data import get_task, load_glue_split, load_split
from conftest import require_data

# (task, split, data rows): the MANIFEST table.
ROW_COUNTS = [
    ("CoLA", "train", 8551), ("CoLA", "dev", 1043), ("CoLA", "test", 1063),
    ("SST-2", "train", 67349), ("SST-2", "dev", 872), ("SST-2", "test", 1821),
    ("MRPC", "train", 3668), ("MRPC", "dev", 408), ("MRPC", "test", 1725),
    ("STS-B", "train", 5749), ("STS-B", "dev", 1500), ("STS-B", "test", 1379),
    ("QNLI", "dev", 5463), ("QNLI", "test", 5463),
    ("RTE", "train", 2490), ("RTE", "dev", 277), ("RTE", "test", 3000),
    ("WNLI", "train", 635), ("WNLI", "dev", 71), ("WNLI", "test", 146),
    ("AX", "test", 1104),
]

# Dev label counts, by label name (MANIFEST).
DEV_LABEL_COUNTS = {
    "CoLA": {"1": 721, "0": 322},
    "SST-2": {"1": 444, "0": 428},
    "MRPC": {"1": 279, "0": 129},
    "RTE": {"entailment": 146, "not_entailment": 131},
    "QNLI": {"entailment": 2702, "not_entailment": 2761},
    "WNLI": {"1": 31, "0": 40},
}


def glue_root():
    return require_data("glue")


def _label_counts(task, examples):
    return {task.label_names[i]: n for i, n in collections.Counter(examples.labels).items()}


@pytest.mark.parametrize("name,split,rows", ROW_COUNTS)
def test_real_row_counts_and_fields(name, split, rows):
    task = get_task(name)
    examples = load_glue_split(task, split, str(glue_root() / task.folder))
    assert examples.num_examples == rows
    single = name in ("CoLA", "SST-2")
    assert (examples.texts_b is None) == single
    if task.is_test_split(split):
        assert examples.labels is None
        # Test indices are the test file's index column: 0..n-1 in file order.
        assert examples.indices == [str(i) for i in range(rows)]
    else:
        assert examples.labels.shape == (rows,)
        expected_dtype = np.float32 if task.is_regression else np.int64
        assert examples.labels.dtype == expected_dtype
    assert all(isinstance(t, str) and t for t in examples.texts_a)
    assert not any(t.startswith("\ufeff") for t in examples.texts_a)


@pytest.mark.parametrize("name", sorted(DEV_LABEL_COUNTS))
def test_real_dev_label_distribution(name):
    task = get_task(name)
    examples = load_glue_split(task, "dev", str(glue_root()))
    assert _label_counts(task, examples) == DEV_LABEL_COUNTS[name]


def test_mrpc_bom_label_first_and_bare_quotes():
    examples = load_glue_split("mrpc", "train", str(glue_root() / "MRPC"))
    # Header `\ufeffQuality ...` resolved: label first, texts in columns 3 and 4.
    assert examples.labels[:2].tolist() == [1, 0]
    assert examples.texts_a[0] == ('Amrozi accused his brother , whom he called " the witness " '
                                   ', of deliberately distorting his evidence .')
    assert examples.texts_b[0].startswith('Referring to him as only " the witness " ,')
    assert examples.indices[:3] == ["0", "1", "2"]  # No index column: row numbers.
    dev = load_glue_split("mrpc", "dev", str(glue_root()))
    # A text that starts with a bare quote stays one field, verbatim.
    assert dev.texts_b[0] == ('" The foodservice pie business does not fit our long-term '
                              'growth strategy .')


def test_cola_no_header_and_no_trailing_newline():
    dev = load_glue_split("cola", "dev", str(glue_root()))
    assert dev.texts_a[0] == "The sailors rode the breeze clear of the rocks."
    # The last line has no final newline and is still read.
    assert dev.texts_a[-1] == "John talked to Bill about himself."
    assert dev.labels[0] == 1


def test_sst2_trailing_space_kept_verbatim():
    dev = load_glue_split("sst2", "dev", str(glue_root()))
    assert dev.texts_a[0] == "it 's a charming and often affecting journey . "
    assert dev.labels[:2].tolist() == [1, 0]


def test_stsb_float_scores():
    dev = load_glue_split("sts-b", "dev", str(glue_root()))
    assert dev.labels.dtype == np.float32
    np.testing.assert_allclose(dev.labels[:2], [5.0, 4.75])
    assert dev.labels[-1] == 0.0  # Written "0", not "0.000".
    assert 0.0 <= dev.labels.min() and dev.labels.max() <= 5.0
    assert dev.texts_a[0] == "A man with a hard hat is dancing."
    assert dev.texts_b[0] == "A man wearing a hard hat is dancing."
    test = load_glue_split("stsb", "test", str(glue_root()))
    assert test.texts_a[0] == "A girl is styling her hair." and test.labels is None


def test_ax_diagnostic_file():
    ax = load_glue_split("diagnostic", "test", str(glue_root()))
    assert ax.texts_a[0] == "The cat sat on the mat."
    assert ax.texts_b[0] == "The cat did not sit on the mat."
    assert ax.indices[-1] == "1103"


def test_task_folder_and_glue_root_read_the_same():
    root = str(glue_root())
    a = load_glue_split("rte", "dev", root)
    b = load_glue_split("RTE", "validation", root + "/RTE")
    assert a.texts_a == b.texts_a and a.indices == b.indices
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.source.endswith("RTE/dev.tsv")


def test_load_split_with_data_dir_reads_tsv():
    examples = load_split("wnli", "dev", data_dir=str(glue_root()))
    assert examples.texts_a[0] == "The drain is clogged with hair. It has to be cleaned."
    assert examples.label_names == ("0", "1")


def test_missing_split_file_names_it():
    with pytest.raises(FileNotFoundError, match=r"QNLI train: no file train.tsv.*\$GLUE_DIR/QNLI"):
        load_glue_split("qnli", "train", str(glue_root()))


def test_wrong_task_folder_names_the_missing_column():
    # MRPC read from RTE's folder: RTE's header has no `#1 String` column.
    with pytest.raises(ValueError,
                       match=r"RTE/dev.tsv: header lacks column '#1 String' \(the text_a\)"):
        load_glue_split("mrpc", "dev", str(glue_root() / "RTE"))


def test_unknown_split_lists_the_task_splits():
    with pytest.raises(ValueError, match=r"dev_matched"):
        load_glue_split("mnli", "dev", "unused")


# ---------------------------------------------------------------------------
# Generated files: MNLI, QQP and QNLI train are not in shared/data.
# ---------------------------------------------------------------------------

def _write(path, lines, final_newline=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + ("\n" if final_newline else ""), encoding="utf-8")


MNLI_HEAD = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse",
             "sentence2_binary_parse", "sentence1_parse", "sentence2_parse",
             "sentence1", "sentence2"]


def _mnli_row(i, premise, hypothesis, labels):
    return "\t".join([str(i), "31193", f"31193{i}", "government", f"( ( {premise} ) )",
                      f"( {hypothesis} )", f"(ROOT (S {premise}))", f"(ROOT {hypothesis})",
                      premise, hypothesis] + labels)


@pytest.fixture
def mnli_dir(tmp_path):
    d = tmp_path / "glue" / "MNLI"
    _write(d / "train.tsv", ["\t".join(MNLI_HEAD + ["label1", "gold_label"]),
                             _mnli_row(0, 'He said "yes".', "He agreed.", ["entailment"] * 2),
                             _mnli_row(1, "It rained.", "It was dry.", ["contradiction"] * 2),
                             _mnli_row(2, "A dog.", "A brown dog.", ["neutral"] * 2)])
    dev_head = "\t".join(MNLI_HEAD + [f"label{k}" for k in range(1, 6)] + ["gold_label"])
    for kind in ("matched", "mismatched"):
        _write(d / f"dev_{kind}.tsv", [
            dev_head,
            _mnli_row(0, f"{kind} one", "h1", ["neutral"] * 5 + ["neutral"]),
            _mnli_row(1, f"{kind} two", "h2", ["entailment", "neutral", "entailment",
                                                "entailment", "entailment", "entailment"]),
        ])
        _write(d / f"test_{kind}.tsv", ["\t".join(MNLI_HEAD)] + [
            _mnli_row(i, f"{kind} test {i}", f"h{i}", []) for i in range(3)])
    return d


def test_mnli_generated_layout(mnli_dir):
    task = get_task("mnli")
    train = load_glue_split(task, "train", str(mnli_dir))
    assert train.texts_a == ['He said "yes".', "It rained.", "A dog."]
    # BERT's label order: contradiction, entailment, neutral.
    assert [task.label_names[i] for i in train.labels] == ["entailment", "contradiction",
                                                           "neutral"]
    assert train.labels.tolist() == [1, 0, 2]
    for kind in ("matched", "mismatched"):
        dev = load_glue_split(task, f"dev_{kind}", str(mnli_dir.parent))
        assert dev.texts_a == [f"{kind} one", f"{kind} two"]
        assert dev.labels.tolist() == [2, 1]  # gold_label, the last of 16 columns.
        test = load_glue_split(task, f"test_{kind}", str(mnli_dir))
        assert test.labels is None and test.indices == ["0", "1", "2"]
        assert test.texts_b == ["h0", "h1", "h2"]
    # TFDS split names are accepted.
    assert load_glue_split(task, "validation_mismatched", str(mnli_dir)).texts_a[0] == \
        "mismatched one"


def test_mnli_label_outside_set_names_file_and_line(tmp_path):
    d = tmp_path / "MNLI"
    _write(d / "dev_matched.tsv", ["\t".join(MNLI_HEAD + ["label1", "gold_label"]),
                                   _mnli_row(0, "p", "h", ["neutral", "neutral"]),
                                   _mnli_row(1, "p", "h", ["-", "-"])])
    with pytest.raises(ValueError, match=r"dev_matched.tsv:3: label '-' is not one of "
                                         r"\['contradiction', 'entailment', 'neutral'\]"):
        load_glue_split("mnli", "dev_matched", str(d))


QQP_HEAD = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"


def test_qqp_skips_and_counts_malformed_rows(tmp_path, caplog):
    d = tmp_path / "QQP"
    _write(d / "train.tsv", [
        QQP_HEAD,
        '201359\t303345\t303346\tWhy are "Mac" users so loyal?\tWhy do Mac users love Macs?\t1',
        # A question broken by a newline: two malformed lines, both skipped.
        "402555\t536040\t536041\tHow do I start a",
        "blog?\tHow can I blog?\t1",
        "1\t3\t4\tWhat is a qubit?\tWhat is a quantum bit?\t0",
    ])
    with caplog.at_level(logging.WARNING):
        train = load_glue_split("qqp", "train", str(d))
    assert train.num_examples == 2
    assert train.indices == ["201359", "1"]  # The `id` column.
    assert train.texts_a[0] == 'Why are "Mac" users so loyal?'
    assert train.labels.tolist() == [1, 0]
    assert "skipped 2 malformed rows" in caplog.text and "[3, 4]" in caplog.text


def test_qqp_test_split_never_skips_rows(tmp_path):
    d = tmp_path / "QQP"
    _write(d / "test.tsv", ["id\tquestion1\tquestion2", "0\tq one\tq two", "1\tbroken"])
    with pytest.raises(ValueError, match=r"test.tsv:3: malformed row: expected 3 "
                                         r"tab-separated columns, found 2"):
        load_glue_split("qqp", "test", str(d))
    _write(d / "test.tsv", ["id\tquestion1\tquestion2", "0\tq one\tq two", "1\tq3\tq4"])
    test = load_glue_split("qqp", "test", str(tmp_path))
    assert test.indices == ["0", "1"] and test.labels is None and test.texts_b == ["q two", "q4"]


def test_qnli_train_layout_in_glue_root(tmp_path):
    _write(tmp_path / "QNLI" / "train.tsv", [
        "index\tquestion\tsentence\tlabel",
        "0\tWhen did it start?\tIt started in 1990.\tentailment",
        "1\tWho won?\tNobody \"really\" knows.\tnot_entailment",
    ], final_newline=False)
    train = load_glue_split("QNLI", "train", str(tmp_path))
    assert train.texts_a == ["When did it start?", "Who won?"]
    assert train.texts_b[1] == 'Nobody "really" knows.'
    assert train.labels.tolist() == [0, 1]


def test_malformed_row_elsewhere_is_an_error(tmp_path):
    _write(tmp_path / "CoLA" / "train.tsv", ["gj04\t1\t\tFine.", "gj04\t0\tBroken row."])
    with pytest.raises(ValueError, match=r"CoLA/train.tsv:2: malformed row: expected 4 "
                                         r"tab-separated columns, found 3"):
        load_glue_split("cola", "train", str(tmp_path))


def test_unknown_label_is_an_error(tmp_path):
    _write(tmp_path / "RTE" / "dev.tsv", ["index\tsentence1\tsentence2\tlabel",
                                          "0\ta\tb\tentailment", "1\ta\tb\tmaybe"])
    with pytest.raises(ValueError, match=r"dev.tsv:3: label 'maybe' is not one of "
                                         r"\['entailment', 'not_entailment'\]"):
        load_glue_split("rte", "dev", str(tmp_path))


def test_bad_score_is_an_error(tmp_path):
    head = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
    _write(tmp_path / "STS-B" / "dev.tsv", [head, "0\tg\tf\ty\t0\tn\tn\ta\tb\thigh"])
    with pytest.raises(ValueError, match=r"dev.tsv:2: score 'high' is not a finite number"):
        load_glue_split("stsb", "dev", str(tmp_path))


def test_empty_split_is_an_error(tmp_path):
    _write(tmp_path / "WNLI" / "dev.tsv", ["index\tsentence1\tsentence2\tlabel"])
    with pytest.raises(ValueError, match=r"dev.tsv: no examples"):
        load_glue_split("wnli", "dev", str(tmp_path))
    _write(tmp_path / "WNLI" / "test.tsv", [], final_newline=False)
    with pytest.raises(ValueError, match=r"test.tsv: empty file"):
        load_glue_split("wnli", "test", str(tmp_path))


def test_ax_alternative_file_name(tmp_path):
    _write(tmp_path / "AX.tsv", ["index\tsentence1\tsentence2", "0\tp\th"])
    ax = load_glue_split("ax", "test", str(tmp_path))
    assert ax.texts_a == ["p"] and ax.indices == ["0"]
