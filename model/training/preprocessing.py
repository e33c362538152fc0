"""The tensorflow-transform ``preprocessing_fn``: raw field strings in, model features out.

Every scored field (``transforms.fields.SCORED_FIELDS``) arrives as one raw
string per record (a missing value is ``""``). Per field the function emits

* ``<field>_chars``  int64 [B, max_chars]  code-point ids (0 = padding), see ``char_ids``;
* ``<field>_feats``  float32 [B, k]        shape features, z-scored by TFT analyzers;

and for the free-text fields (title, artist, album) also

* ``<field>_words``  int64 [B, MAX_WORDS]  ids in one shared word vocabulary
  (0 = padding, 1 = out of vocabulary), analysed by ``tft.vocabulary``;

plus ``genre_id`` (a vocabulary over the raw genre strings) and
``record_feats`` (cross-field relations such as title-starts-with-artist).

The function is pure: it reads only its inputs and constants from
``transforms.fields``; labels never pass through it, so serving needs nothing
but the raw strings. Run it with ``model.training.train.analyze_and_transform``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from transforms.fields import FIELD_SPECS, GENRES, SCORED_FIELD_NAMES, TEXT_FIELDS

# Code-point id space. Ids below are chosen so that the characters that tell
# error classes apart keep their own id: C0/C1 control characters, Latin-1 and
# Latin Extended-A (the debris of UTF-8 read as Latin-1/cp1252: Ã, Â, â, Å...),
# and General Punctuation (smart quotes, dashes, zero-width spaces, the cp1252
# characters of mojibake such as ‚ „ … † ‰). Anything else only needs to say
# "some other script", so it shares a few hashed buckets.
PAD_ID = 0
_DIRECT_LIMIT = 0x180  # code points [0, 0x180) -> id cp + 1
_REPLACEMENT_ID = _DIRECT_LIMIT + 1  # U+FFFD, what undecodable bytes become
_PUNCT_BASE = _REPLACEMENT_ID + 1  # U+2000..U+206F -> _PUNCT_BASE + (cp - 0x2000)
_OTHER_BASE = _PUNCT_BASE + 0x70
_OTHER_BUCKETS = 14
CHAR_VOCAB_SIZE = _OTHER_BASE + _OTHER_BUCKETS  # 512
_TABLE_SIZE = 0x2100  # code points with their own table entry; the rest are "other"

MAX_WORDS = 12
WORD_VOCAB_TOP_K = 20_000
WORD_VOCAB_NAME = "words"
GENRE_VOCAB_NAME = "genre"
GENRE_VOCAB_TOP_K = 500
ARTIST_VOCAB_NAME = "artists"
ARTIST_VOCAB_TOP_K = 100_000
Z_CLIP = 5.0
_MAX_CHARS = max(spec.max_chars for spec in FIELD_SPECS.values())

# Character categories (mutually exclusive), looked up per code point.
_OTHER, _UPPER, _LOWER, _DIGIT, _SPACE, _BREAK, _PUNCT, _CONTROL = range(8)
_N_CATEGORIES = 8


def _category_table() -> np.ndarray:
    """Category of each code point below _TABLE_SIZE.

    Case comes from Basic Latin, Latin-1, Latin Extended-A, Greek and
    Cyrillic ranges rather than per-character string ops: this graph runs on
    the serving hot path, where one gather beats a dozen string kernels.
    """
    table = np.full(_TABLE_SIZE, _OTHER, dtype=np.int32)
    table[ord("A") : ord("Z") + 1] = _UPPER
    table[ord("a") : ord("z") + 1] = _LOWER
    table[0xC0:0xDF] = _UPPER
    table[0xDF:0x100] = _LOWER
    table[0xD7] = table[0xF7] = _PUNCT  # multiplication and division signs
    table[0x100:0x138:2] = _UPPER  # Latin Extended-A: upper/lower pairs
    table[0x101:0x138:2] = _LOWER
    table[0x391:0x3AA] = _UPPER
    table[0x3B1:0x3CA] = _LOWER
    table[0x410:0x430] = _UPPER
    table[0x430:0x450] = _LOWER
    table[ord("0") : ord("9") + 1] = _DIGIT
    for lo, hi in ((33, 48), (58, 65), (91, 97), (123, 127), (0x2010, 0x2028)):
        table[lo:hi] = _PUNCT
    table[0:32] = _CONTROL
    table[0x7F:0xA0] = _CONTROL
    table[0xAD] = _CONTROL  # soft hyphen
    table[0x200B:0x2010] = _CONTROL  # zero-width and direction marks
    table[0x2060:0x2065] = _CONTROL  # word joiner and invisible operators
    table[9:14] = _BREAK
    table[[0x20, 0xA0]] = _SPACE
    table[0x2000:0x200B] = _SPACE
    return table


def _id_table() -> np.ndarray:
    """Embedding id of each code point below _TABLE_SIZE."""
    cps = np.arange(_TABLE_SIZE, dtype=np.int64)
    ids = _OTHER_BASE + cps % _OTHER_BUCKETS
    punct = (cps >= 0x2000) & (cps < 0x2070)
    ids[punct] = _PUNCT_BASE + (cps[punct] - 0x2000)
    ids[:_DIRECT_LIMIT] = cps[:_DIRECT_LIMIT] + 1
    return ids


_CATEGORIES = _category_table()
_IDS = _id_table()

# Per-field regular expressions (RE2, full match). They say what a canonical
# value looks like, which a char-CNN would otherwise have to learn from
# examples of every length and position. Kept few: each one is a pass over
# the strings on the serving hot path.
_TEXT_PATTERNS: tuple[str, ...] = (
    r"(?s).*&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z][a-zA-Z0-9]{1,31});.*",  # html entity
    "(?s).*(Ã.|Â.|â€|Å.).*",  # typical UTF-8-as-Latin-1 pairs
)
_FIELD_PATTERNS: dict[str, tuple[str, ...]] = {
    "title": (
        r"(?s)[0-9]{1,3}\s*[-.):_]\s*.+",  # "01 - Song", "1. Song"
        r"(?s)[0-9]{1,3}\s+.+",  # "01 Song" (or "99 Luftballons")
        r"(?is).*\b(feat\.?|ft\.?|featuring)\s.*",
        r"(?is).*[(\[](explicit|clean|edited).*",
        r"(?s).*\s[-–—]\s.*",  # "Artist - Song"
    ),
    "isrc": (
        "[A-Z]{2}[A-Z0-9]{3}[0-9]{7}",  # canonical
        r"(?i)\s*[a-z]{2}[-\s._]*[a-z0-9]{3}[-\s._]*[0-9]{2}[-\s._]*[0-9]{5}\s*",  # same code, badly written
    ),
    "upc": ("[0-9]{12}", "[0-9]{13}"),
    "release_date": (
        "[0-9]{4}-[0-9]{2}-[0-9]{2}",
        "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])",  # plausible month/day
    ),
    "duration_ms": ("[0-9]+", "[1-9][0-9]{4,6}"),  # an integer; 10 s .. 2.8 h in ms
}


def _decode(text: tf.Tensor) -> tf.RaggedTensor:
    return tf.strings.unicode_decode(text, "UTF-8", errors="replace", replacement_char=0xFFFD)


def _lookup(table: np.ndarray, cps: tf.Tensor, above: tf.Tensor) -> tf.Tensor:
    """Table value of each code point; ``above`` for code points past the table."""
    inside = cps < _TABLE_SIZE
    values = tf.gather(tf.constant(table), tf.where(inside, cps, 0))
    return tf.where(inside, values, above)


def _code_point_ids(cps: tf.Tensor) -> tf.Tensor:
    """Map code points (int32, any shape) to embedding ids in [1, CHAR_VOCAB_SIZE)."""
    cps = tf.cast(cps, tf.int64)
    above = tf.where(
        tf.equal(cps, 0xFFFD),
        tf.constant(_REPLACEMENT_ID, tf.int64),
        _OTHER_BASE + tf.math.floormod(cps, _OTHER_BUCKETS),
    )
    return _lookup(_IDS, cps, above)


def _categories(cps: tf.Tensor) -> tf.Tensor:
    above = tf.where(
        tf.equal(cps, 0xFEFF) | tf.equal(cps, 0xFFFD),
        _CONTROL,
        tf.where(tf.equal(cps, 0x3000), _SPACE, _OTHER),
    )
    return _lookup(_CATEGORIES, cps, above)


def char_ids(text: tf.Tensor, max_chars: int) -> tf.Tensor:
    """Map strings [N] to code-point ids [N, max_chars] (truncated, 0-padded)."""
    cps = _decode(text)
    ids = cps.with_flat_values(_code_point_ids(cps.flat_values))
    return ids.to_tensor(default_value=PAD_ID, shape=[None, max_chars])


def _shape_columns(cps: tf.RaggedTensor) -> tf.Tensor:
    """Length, character-class shares and spacing of strings [N] -> float32 [N, K].

    Works on the flat code points of all fields of the batch at once, with one
    bincount for all the counts.
    """
    v = cps.flat_values
    rows = cps.nrows()
    row_ids = tf.cast(cps.value_rowids(), tf.int32)
    category = _categories(v)
    non_ascii = tf.cast(v > 127, tf.int32)
    bins = row_ids * (2 * _N_CATEGORIES) + category * 2 + non_ascii
    counts = tf.math.bincount(
        bins, minlength=tf.cast(rows, tf.int32) * 2 * _N_CATEGORIES, dtype=tf.float32
    )
    counts = tf.reshape(
        counts[: tf.cast(rows, tf.int32) * 2 * _N_CATEGORIES], [-1, _N_CATEGORIES, 2]
    )
    by_category = tf.reduce_sum(counts, axis=2)  # [N, categories]
    n_non_ascii = tf.reduce_sum(counts[:, :, 1], axis=1)

    def category_count(c: int) -> tf.Tensor:
        return by_category[:, c]

    n = tf.cast(cps.row_lengths(), tf.float32)
    n_upper, n_lower = category_count(_UPPER), category_count(_LOWER)
    letters = n_upper + n_lower
    safe_n = tf.maximum(n, 1.0)
    safe_letters = tf.maximum(letters, 1.0)

    # Spacing: first and last character, and two blanks in a row.
    is_blank = tf.equal(category, _SPACE) | tf.equal(category, _BREAK)
    starts, limits = cps.row_splits[:-1], cps.row_splits[1:]
    nonempty = limits > starts
    blank_or_false = tf.concat([is_blank, [False]], axis=0)  # index nnz for empty rows
    nnz = tf.shape(v, out_type=tf.int64)[0]
    first_blank = tf.gather(blank_or_false, tf.where(nonempty, starts, nnz))
    last_blank = tf.gather(blank_or_false, tf.where(nonempty, limits - 1, nnz))
    pair = is_blank[1:] & is_blank[:-1] & tf.equal(row_ids[1:], row_ids[:-1])
    doubled = tf.math.unsorted_segment_max(
        tf.cast(pair, tf.float32), row_ids[1:], tf.cast(rows, tf.int32)
    )
    spaces = category_count(_SPACE) + category_count(_BREAK)
    columns = [
        tf.math.log1p(n),
        tf.cast(tf.equal(n, 0.0), tf.float32),
        n_upper / safe_letters,
        n_lower / safe_letters,
        tf.cast(letters > 0, tf.float32),
        tf.cast((n_upper > 0) & tf.equal(n_lower, 0.0), tf.float32),  # every letter upper
        tf.cast((n_lower > 0) & tf.equal(n_upper, 0.0), tf.float32),  # every letter lower
        letters / safe_n,
        category_count(_DIGIT) / safe_n,
        spaces / safe_n,
        category_count(_PUNCT) / safe_n,
        n_non_ascii / safe_n,
        tf.cast(category_count(_CONTROL) > 0, tf.float32),
        tf.cast(category_count(_BREAK) > 0, tf.float32),
        tf.cast(first_blank, tf.float32),
        tf.cast(last_blank, tf.float32),
        tf.maximum(doubled, 0.0),
        tf.math.log1p(spaces),
    ]
    return tf.stack(columns, axis=1)


N_SHAPE_COLUMNS = 18  # columns of _shape_columns


def _matches(text: tf.Tensor, patterns: tuple[str, ...]) -> list[tf.Tensor]:
    return [tf.cast(tf.strings.regex_full_match(text, p), tf.float32) for p in patterns]


def _gtin_check_ok(text: tf.Tensor) -> tf.Tensor:
    """1.0 where the digits of ``text`` form a 12/13-digit GTIN with a valid check digit."""
    digits = tf.strings.regex_replace(text, "[^0-9]", "")
    values = tf.strings.unicode_decode(digits, "UTF-8")
    n = values.row_lengths()
    dense = values.to_tensor(default_value=48, shape=[None, 13]) - 48  # [N, 13], left-aligned
    # Weights run from the right: check digit 1, then 3, 1, 3, ... (UPC-A and EAN-13 alike).
    pos_from_right = n[:, None] - 1 - tf.range(13, dtype=tf.int64)[None, :]
    weights = tf.where(
        pos_from_right < 0, 0, tf.where(tf.equal(tf.math.floormod(pos_from_right, 2), 1), 3, 1)
    )
    total = tf.reduce_sum(dense * weights, axis=1)
    ok = tf.equal(tf.math.floormod(total, 10), 0) & ((n == 12) | (n == 13))
    return tf.cast(ok, tf.float32)


def _duration_log_value(text: tf.Tensor) -> tf.Tensor:
    """log1p of the leading number in ``text`` (0 when there is none): ms vs seconds vs minutes."""
    number = tf.strings.regex_replace(text, r"^\s*([0-9]{1,12}).*$", r"\1")
    number = tf.where(tf.strings.regex_full_match(number, "[0-9]{1,12}"), number, "0")
    return tf.math.log1p(tf.strings.to_number(number, tf.float64))


def _field_specific_columns(name: str, text: tf.Tensor) -> list[tf.Tensor]:
    """Checks that only make sense for one field (canonical formats, check digits)."""
    columns = _matches(text, _FIELD_PATTERNS.get(name, ()))
    if name in TEXT_FIELDS:
        columns += _matches(text, _TEXT_PATTERNS)
    if name == "upc":
        columns.append(_gtin_check_ok(text))
    if name == "duration_ms":
        columns.append(tf.cast(_duration_log_value(text), tf.float32))
    if name == "genre":
        canonical = tf.constant(GENRES)
        columns.append(
            tf.cast(tf.reduce_any(tf.equal(text[:, None], canonical[None, :]), axis=1), tf.float32)
        )
        folded = tf.strings.lower(tf.strings.strip(text), encoding="utf-8")
        canonical_folded = tf.strings.lower(canonical, encoding="utf-8")
        columns.append(
            tf.cast(
                tf.reduce_any(tf.equal(folded[:, None], canonical_folded[None, :]), axis=1),
                tf.float32,
            )
        )
    return columns


def _normalise_words(text: tf.Tensor) -> tf.RaggedTensor:
    folded = tf.strings.lower(text, encoding="utf-8")
    folded = tf.strings.regex_replace(folded, r"[^\pL\pN'&]+", " ")
    return tf.strings.split(folded)


def _starts_with(text: tf.Tensor, prefix: tf.Tensor) -> tf.Tensor:
    n = tf.strings.length(prefix)
    head = tf.strings.substr(text, tf.zeros_like(n), n)
    return (n > 0) & tf.equal(head, prefix)


def _ends_with(text: tf.Tensor, suffix: tf.Tensor) -> tf.Tensor:
    n = tf.strings.length(suffix)
    start = tf.maximum(tf.strings.length(text) - n, 0)
    tail = tf.strings.substr(text, start, n)
    return (n > 0) & tf.equal(tail, suffix)


def _record_features(inputs: dict[str, tf.Tensor]) -> tf.Tensor:
    """Relations between fields: artist inside the title, swapped title/artist, self-titled."""
    title = tf.strings.lower(tf.strings.strip(inputs["title"]), encoding="utf-8")
    artist = tf.strings.lower(tf.strings.strip(inputs["artist"]), encoding="utf-8")
    album = tf.strings.lower(tf.strings.strip(inputs["album"]), encoding="utf-8")
    columns = [
        _starts_with(title, artist),
        _ends_with(title, artist),
        _starts_with(artist, title),
        tf.equal(title, artist) & (tf.strings.length(title) > 0),
        tf.equal(title, album) & (tf.strings.length(title) > 0),
        tf.equal(artist, album) & (tf.strings.length(artist) > 0),
    ]
    return tf.stack([tf.cast(c, tf.float32) for c in columns], axis=1)


def _name_key(text: tf.Tensor) -> tf.Tensor:
    """Case- and spacing-insensitive form of a name, for the artist vocabulary."""
    folded = tf.strings.lower(tf.strings.strip(text), encoding="utf-8")
    return tf.strings.regex_replace(folded, r"\s+", " ")


def _word_ids(words: tf.RaggedTensor, vocab: tf.Tensor) -> tf.Tensor:
    # apply_vocabulary gives 0..V-1 for known words and V for unknown ones;
    # shift by one so that 0 is padding.
    ids = tft.apply_vocabulary(words, vocab, default_value=-1, num_oov_buckets=1)
    return (ids + 1).to_tensor(default_value=PAD_ID, shape=[None, MAX_WORDS])


def _z_score(x: tf.Tensor) -> tf.Tensor:
    """Per-column z-score from the training data, clipped.

    Clipping matters for rare indicators: one that fires once in the training
    split gets a variance near zero and would otherwise put values of several
    hundred into the network whenever it fires at serving time.
    """
    return tf.clip_by_value(tft.scale_to_z_score(x, elementwise=True), -Z_CLIP, Z_CLIP)


def preprocessing_fn(inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """TFT preprocessing: raw strings [B] per scored field -> model features."""
    n_fields = len(SCORED_FIELD_NAMES)
    stacked = tf.stack([inputs[name] for name in SCORED_FIELD_NAMES], axis=1)  # [B, F]
    flat = tf.reshape(stacked, [-1])  # record-major: row b * F + i is field i of record b
    cps = _decode(flat)

    ids = cps.with_flat_values(_code_point_ids(cps.flat_values))
    ids = ids.to_tensor(default_value=PAD_ID, shape=[None, _MAX_CHARS])
    ids = tf.reshape(ids, [-1, n_fields, _MAX_CHARS])
    shape = _z_score(tf.reshape(_shape_columns(cps), [-1, n_fields, N_SHAPE_COLUMNS]))

    specific = {name: _field_specific_columns(name, inputs[name]) for name in SCORED_FIELD_NAMES}
    specific_z = _z_score(
        tf.stack([c for name in SCORED_FIELD_NAMES for c in specific[name]], axis=1)
    )

    outputs: dict[str, tf.Tensor] = {}
    offset = 0
    for i, name in enumerate(SCORED_FIELD_NAMES):
        outputs[f"{name}_chars"] = ids[:, i, : FIELD_SPECS[name].max_chars]
        width = len(specific[name])
        outputs[f"{name}_feats"] = tf.concat(
            [shape[:, i, :], specific_z[:, offset : offset + width]], axis=1
        )
        offset += width

    words = {name: _normalise_words(inputs[name]) for name in TEXT_FIELDS}
    # One vocabulary for all free-text fields: a word that is common in titles
    # but rare in artist names is exactly what the swap head needs to see.
    vocab = tft.vocabulary(
        tf.concat([words[name] for name in TEXT_FIELDS], axis=1),
        top_k=WORD_VOCAB_TOP_K,
        frequency_threshold=2,
        vocab_filename=WORD_VOCAB_NAME,
    )
    for name in TEXT_FIELDS:
        outputs[f"{name}_words"] = _word_ids(words[name], vocab)

    outputs["genre_id"] = tft.compute_and_apply_vocabulary(
        tf.strings.strip(inputs["genre"]),
        top_k=GENRE_VOCAB_TOP_K,
        frequency_threshold=3,
        num_oov_buckets=1,
        vocab_filename=GENRE_VOCAB_NAME,
    )
    # Artist names seen (several times) as artists in training. A title that
    # is a known artist name, next to an artist that is not, is the strongest
    # sign of a swapped record; rare strings (a swapped title that landed in
    # the artist field once) stay below the frequency threshold.
    artist_vocab = tft.vocabulary(
        _name_key(inputs["artist"]),
        top_k=ARTIST_VOCAB_TOP_K,
        frequency_threshold=3,
        vocab_filename=ARTIST_VOCAB_NAME,
    )

    def known_artist(name: str) -> tf.Tensor:
        ids = tft.apply_vocabulary(_name_key(inputs[name]), artist_vocab, default_value=-1)
        return tf.cast(ids >= 0, tf.float32)[:, None]

    record = tf.concat(
        [_record_features(inputs), known_artist("title"), known_artist("artist")], axis=1
    )
    outputs["record_feats"] = _z_score(record)
    return outputs


def word_vocab_size(vocab_size: int) -> int:
    """Embedding rows for ``<field>_words``: padding, the vocabulary, one OOV id."""
    return vocab_size + 2
