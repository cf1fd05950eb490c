"""Word pieces of raw texts with their character spans in the text as given, as graph ops.

A SavedModel that answers SQuAD questions must cut each answer out of the
context string the request gave, with no Python beside it. tf-text reports
a piece's offsets in UTF-8 bytes of the text *after* its normalisation
(lower-casing, accent stripping, control characters turned into spaces),
which stop lining up with the input at its first non-ASCII character
("Beyoncé" is 8 bytes, "beyonce" 7). `tokenize_with_char_offsets` maps them
back exactly as `BertTokenizer.tokenize_with_offsets` (data/tokenization.py)
does with numpy, here with tensor ops:
  * each distinct character is normalised alone and its normalised bytes
    placed by a running sum over the batch's characters; a piece starts at
    the character holding its first normalised byte and ends after the
    character holding its last one (and any characters normalised to
    nothing that follow it);
  * an `[UNK]` piece is stretched to the end of its word: the next
    whitespace character (Python's `str.isspace`) or the next piece.

One departure: where a text's normalisation is not the concatenation of its
characters' normalisations, the eager tokenizer aligns the two with
`difflib`, which has no graph counterpart, and here the running sum stands.
The only such texts known (every pair of code points after a letter, every
pair of combining marks, searched with tf-text's own ops) hold two combining
marks of category Mc with nonzero combining classes (U+1715, U+302E,
U+1D165, ...), which NFD reorders: the same bytes in another order, so at
most the offsets inside that run of marks differ. SQuAD has none.
"""

import tensorflow as tf
import tensorflow_text as tf_text

# The characters Python's `str.isspace` accepts (pinned by a test against
# every code point), as the eager tokenizer tests them.
WHITESPACE = (r"[\t\n\x0b\x0c\r\x1c-\x20\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}"
              r"\x{202f}\x{205f}\x{3000}]")


def normalize(strings, lower_case):
    """tf-text's `BasicTokenizer` normalisation of `strings` (any shape)."""
    if lower_case:
        strings = tf_text.case_fold_utf8(strings)
        strings = tf_text.normalize_utf8(strings, "NFD")
        strings = tf.strings.regex_replace(strings, r"\p{Mn}", "")
    return tf.strings.regex_replace(strings, r"\p{Cc}|\p{Cf}", " ")


def tokenize_with_char_offsets(tokenizer, texts):
    """Word-piece ids of `texts` and each piece's `[start, end)` in characters of its text.

    Equal to `tokenizer.tokenize_with_offsets(texts)` (see the module
    docstring), eagerly or inside a `tf.function`.

    Args:
        tokenizer: a `bert_adapters.data.tokenization.BertTokenizer`.
        texts: `tf.string` `[batch_size]`, valid UTF-8.

    Returns:
        `(ids, starts, ends)`, int32 `tf.RaggedTensor`s `[batch_size,
        (num_pieces)]`: `ids` as `tokenizer.tokenize(texts)`; `starts` and
        `ends` count characters (code points) of each text, as Python's `str`
        indexes it.
    """
    # The wrapped tf-text tokenizer: its offsets are what is mapped here.
    ids, byte_starts, byte_ends = tokenizer._tokenizer.tokenize_with_offsets(texts)
    ids = ids.merge_dims(-2, -1)
    byte_starts = tf.cast(byte_starts.merge_dims(-2, -1).flat_values, tf.int64)
    byte_ends = tf.cast(byte_ends.merge_dims(-2, -1).flat_values, tf.int64)

    chars = tf.strings.unicode_split(texts, "UTF-8")
    char_splits = chars.row_splits
    unique_chars, char_index = tf.unique(chars.flat_values)
    norm_len = tf.gather(tf.strings.length(normalize(unique_chars, tokenizer.lower_case)),
                         char_index)
    is_space = tf.gather(tf.strings.regex_full_match(unique_chars, WHITESPACE), char_index)

    # The batch's characters and normalised bytes laid end to end: one
    # search serves every row.
    norm_end = tf.cumsum(tf.cast(norm_len, tf.int64))
    norm_start = norm_end - tf.cast(norm_len, tf.int64)
    row_base = tf.gather(tf.concat([[0], norm_end], 0), char_splits[:-1])
    piece_row = ids.value_rowids()
    first_char = tf.gather(char_splits, piece_row)
    num_chars = tf.gather(char_splits, piece_row + 1) - first_char
    start_at = byte_starts + tf.gather(row_base, piece_row)
    end_at = byte_ends + tf.gather(row_base, piece_row)
    starts = tf.searchsorted(norm_end, start_at, side="right", out_type=tf.int64) - first_char
    ends = tf.maximum(tf.searchsorted(norm_end, end_at, side="right", out_type=tf.int64),
                      tf.searchsorted(norm_start, end_at, side="left",
                                      out_type=tf.int64)) - first_char
    starts = tf.clip_by_value(starts, 0, num_chars)
    ends = tf.clip_by_value(ends, starts, num_chars)
    ends = _stretch_unknown(ids, tokenizer.unk_id, starts, ends, num_chars, first_char, is_space)
    splits = ids.row_splits
    return (ids, tf.RaggedTensor.from_row_splits(tf.cast(starts, tf.int32), splits),
            tf.RaggedTensor.from_row_splits(tf.cast(ends, tf.int32), splits))


def _stretch_unknown(ids, unk_id, starts, ends, num_chars, first_char, is_space):
    """`ends`, with each `[UNK]` piece's end moved to its word's end.

    A word's end: its first whitespace character, but no further than the
    next piece's start (the text's end for a row's last piece). tf-text ends
    the `[UNK]` of a word over 100 bytes after 5 bytes, mid-word.
    """
    pieces = tf.shape(starts, out_type=tf.int64)[0]
    position = tf.range(pieces)
    last_in_row = tf.equal(position + 1, tf.gather(ids.row_splits, ids.value_rowids() + 1))
    next_start = tf.concat([starts[1:], tf.zeros([1], tf.int64)], 0)[:pieces]
    limit = tf.where(last_in_row, num_chars, next_start)
    # The first whitespace character at or after each end, in batch-wide
    # character positions (one past the batch's last character when none).
    spaces = tf.concat([tf.where(is_space)[:, 0], [tf.int64.max // 2]], 0)
    after = tf.gather(spaces, tf.searchsorted(spaces, first_char + ends, side="left",
                                              out_type=tf.int64)) - first_char
    stretched = tf.maximum(ends, tf.minimum(limit, after))
    return tf.where(tf.equal(ids.flat_values, unk_id), stretched, ends)
