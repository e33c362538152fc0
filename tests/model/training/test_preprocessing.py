"""preprocessing_fn: the pure TF helpers directly, the whole function through TFT on Beam."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from model.training import preprocessing as pp
from transforms.fields import FIELD_SPECS, SCORED_FIELD_NAMES

SHAPE_COLUMN = {
    "upper_share": 2,
    "all_upper": 5,
    "all_lower": 6,
    "control": 12,
    "line_break": 13,
    "leading_blank": 14,
    "trailing_blank": 15,
    "doubled_blank": 16,
}


def _shape(values: list[str]) -> np.ndarray:
    return pp._shape_columns(pp._decode(tf.constant(values))).numpy()


def test_char_ids_pad_truncate_and_keep_telling_characters_apart() -> None:
    ids = pp.char_ids(tf.constant(["ab", "x" * 100, "Ã©", "\u200b", "日本", ""]), 8).numpy()
    assert ids.shape == (6, 8)
    assert list(ids[0, :3]) == [ord("a") + 1, ord("b") + 1, pp.PAD_ID]
    assert (ids[1] == ord("x") + 1).all()  # truncated to max_chars
    assert ids[2, 0] == 0xC3 + 1 and ids[2, 1] == 0xA9 + 1  # mojibake debris keeps its own ids
    assert ids[3, 0] == pp._PUNCT_BASE + 0x0B  # zero-width space: General Punctuation block
    assert pp._OTHER_BASE <= ids[4, 0] < pp.CHAR_VOCAB_SIZE
    assert (ids[5] == pp.PAD_ID).all()
    assert ids.max() < pp.CHAR_VOCAB_SIZE


def test_shape_columns_see_spacing_case_and_control_characters() -> None:
    x = _shape(
        [
            "Song",
            " Song",
            "Song ",
            "Two  Words",
            "SHOUT",
            "quiet",
            "Bad\x00",
            "Line\nBreak",
            "",
            "Ünïcode",
        ]
    )
    assert x.shape == (10, pp.N_SHAPE_COLUMNS)
    col = SHAPE_COLUMN
    assert x[0, col["leading_blank"]] == 0 and x[0, col["trailing_blank"]] == 0
    assert x[1, col["leading_blank"]] == 1
    assert x[2, col["trailing_blank"]] == 1
    assert x[3, col["doubled_blank"]] == 1 and x[0, col["doubled_blank"]] == 0
    assert x[4, col["all_upper"]] == 1 and x[4, col["upper_share"]] == 1.0
    assert x[5, col["all_lower"]] == 1
    assert x[6, col["control"]] == 1 and x[0, col["control"]] == 0
    assert x[7, col["line_break"]] == 1
    assert x[8, 1] == 1  # empty
    assert x[9, 11] == pytest.approx(2 / 7)  # non-ASCII share


def test_gtin_check_digit() -> None:
    ok = pp._gtin_check_ok(
        tf.constant(["036000291452", "036000291453", "4006381333931", "12345", ""])
    )
    assert list(ok.numpy()) == [1.0, 0.0, 1.0, 0.0, 0.0]


def test_record_features_relate_title_and_artist() -> None:
    inputs = {
        "title": tf.constant(["Muse - Uprising", "Uprising", "Muse", "Muse"]),
        "artist": tf.constant(["Muse", "Muse", "Muse", "Uprising"]),
        "album": tf.constant(["", "The Resistance", "", ""]),
    }
    x = pp._record_features(inputs).numpy()
    assert list(x[:, 0]) == [1, 0, 1, 0]  # title starts with artist
    assert list(x[:, 3]) == [0, 0, 1, 0]  # title equals artist


def test_preprocessing_fn_through_tft(tmp_path: Path) -> None:
    from model.training.train import analyze_and_transform

    rows = [
        {
            "title": "Song",
            "artist": "Band",
            "album": "Album",
            "isrc": "USABC2400001",
            "upc": "036000291452",
            "release_date": "2001-02-03",
            "duration_ms": "235000",
            "genre": "Rock",
        },
        {
            "title": " SONG ",
            "artist": "band",
            "album": "",
            "isrc": "us-abc-24-00001",
            "upc": "0 36000 29145 2",
            "release_date": "Feb 3, 2001",
            "duration_ms": "3:55",
            "genre": "rock",
        },
    ] * 3
    raw = {name: [r[name] for r in rows] for name in SCORED_FIELD_NAMES}
    out = analyze_and_transform({"train": raw, "val": raw}, tmp_path / "tft", tmp_path / "work")
    assert (tmp_path / "tft" / "transform_fn" / "saved_model.pb").is_file()
    for split in ("train", "val"):
        x = out[split]
        for name in SCORED_FIELD_NAMES:
            assert x[f"{name}_chars"].shape == (6, FIELD_SPECS[name].max_chars)
            assert x[f"{name}_chars"].dtype == np.int32
            feats = x[f"{name}_feats"]
            assert feats.dtype == np.float32 and feats.shape[0] == 6
            assert np.isfinite(feats).all() and np.abs(feats).max() <= pp.Z_CLIP
        for name in pp.TEXT_FIELDS:
            assert x[f"{name}_words"].shape == (6, pp.MAX_WORDS)
        assert x["genre_id"].shape == (6,)
        assert x["record_feats"].shape[0] == 6
    # Rows come back in input order (Beam does not keep it; the row id does).
    np.testing.assert_array_equal(out["train"]["title_chars"][0], out["train"]["title_chars"][2])
    assert not np.array_equal(out["train"]["title_chars"][0], out["train"]["title_chars"][1])
    # z-scored by the analyzers: the length column is centred on the training data.
    assert out["train"]["title_feats"][:, 0].mean() == pytest.approx(0.0, abs=1e-5)
