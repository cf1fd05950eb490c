"""BERT's text preprocessing: WordPiece tokenization and sequence packing."""

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from bert_adapters.model.bert_encoder import INPUT_NAMES

_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")


def truncated_pair_lengths(length_a, length_b, budget):
    """Final lengths after BERT's `_truncate_seq_pair`, in closed form.

    `run_classifier.py::_truncate_seq_pair` pops the last token of the longer
    sequence (of b on a tie) until `len(a) + len(b) <= budget`. Popping only
    ever shortens the longer side, so there are three outcomes:
      * the pair already fits: nothing changes;
      * the shorter side s fits in half the budget (2 * s <= budget): it is
        kept whole and the longer side gets the rest, `budget - s`;
      * otherwise both are cut down to meet in the middle, and since b loses
        the ties, a keeps `ceil(budget / 2)` and b `floor(budget / 2)`.
    All three are `a = min(la, max(ceil(budget / 2), budget - lb))` and
    `b = min(lb, max(floor(budget / 2), budget - la))`.

    Args:
        length_a: int tensor `[batch_size]`, lengths of the first segments.
        length_b: int tensor `[batch_size]` of the same dtype, second segments.
        budget: int scalar >= 0, the most tokens a and b may hold together.

    Returns:
        `(new_length_a, new_length_b)`, two tensors like the inputs.
    """
    budget = tf.cast(budget, length_a.dtype)
    half_up = (budget + 1) // 2
    half_down = budget // 2
    new_a = tf.minimum(length_a, tf.maximum(half_up, budget - length_b))
    new_b = tf.minimum(length_b, tf.maximum(half_down, budget - length_a))
    return new_a, new_b


def _read_vocab(vocab_file):
    """The tokens of a one-token-per-line vocabulary; id = line number."""
    with tf.io.gfile.GFile(vocab_file, "rb") as f:
        text = f.read().decode("utf-8")
    # split("\n"), not splitlines(): tokens may hold other line-break
    # characters (U+0085, U+2028), which must not start a new id.
    tokens = [line.strip() for line in text.split("\n")]
    if tokens and not tokens[-1]:
        tokens.pop()  # the final newline
    return tokens


class BertTokenizer(tf.Module):
    """BERT's WordPiece tokenizer and `[CLS] a [SEP] b [SEP]` packer.

    Produces exactly the encoder inputs of google-research/bert's
    `run_classifier.py` (`convert_single_example`), with TensorFlow ops only:
    it runs eagerly, inside a `tf.function` and inside `tf.data` pipelines
    (`ds.batch(32).map(lambda a, b: tokenizer(a, b))`), one batch at a time.

    Tokenization is `tensorflow_text.BertTokenizer`: BERT's basic
    tokenization (whitespace and punctuation splitting, one token per CJK
    character; when `lower_case`, lower-casing and accent stripping via NFD)
    followed by greedy longest-match-first WordPiece with `##`
    continuations; a word that cannot be split into vocabulary pieces
    becomes one `[UNK]`. Known departures from BERT's Python `FullTokenizer`,
    all rare in English text: tf-text case-folds with NFKC (`"ß"` becomes
    `"ss"`, ligatures expand), turns control characters (and, when not
    lower-casing, format characters such as U+200B) into spaces where BERT
    deletes them (`"snow\\x07man"` is two words), and caps words at 100
    bytes where BERT caps them at 100 characters.

    Truncation is longest-first, as `run_classifier.py::_truncate_seq_pair`:
    the last token of the longer segment is dropped (of b on a tie) until the
    pair fits in `max_seq_length - 3` tokens; a single text keeps its first
    `max_seq_length - 2` tokens. BERT's reason: each token cut from a short
    segment (a question, a hypothesis) likely carries more information than
    one cut from a long one, so the short one is kept whole while it fits in
    half the budget. It is how every BERT and adapter result of the paper
    was produced. TF Hub's BERT preprocessing models (`bert_pack_inputs`)
    trim round-robin instead (`RoundRobinTrimmer`: the segments take one
    token each in turn, a first); for two segments that gives exactly the
    same lengths (pinned by a test), so our inputs match TF Hub's too; the
    two rules part only from three segments on. tf-text's
    `ShrinkLongestTrimmer` breaks ties towards a and does not match BERT.
    The lengths are computed in closed form (`truncated_pair_lengths`), with
    no loop over tokens or examples.

    This is a `tf.Module` (not a Keras layer) so that its vocabulary table is
    tracked and saved with any SavedModel that serves raw text.

    Args:
        vocab_file: str. A WordPiece vocabulary, one token per line, id = line
            number; read through `tf.io.gfile`, so `gs://` paths work. Must
            hold `[PAD]`, `[UNK]`, `[CLS]` and `[SEP]`.
        lower_case: bool. Lower-case and strip accents; True for uncased
            checkpoints, False for cased ones.
        max_seq_length: int >= 2 (>= 3 for pairs). Length of every output row.

    Call arguments:
        texts_a: the first segments: a list of str, a 1-D numpy array of
            str/bytes, or a 1-D `tf.string` tensor `[batch_size]`.
        texts_b: optional second segments, the same kind and batch size.

    Returns:
        A dict of int32 tensors `[batch_size, max_seq_length]`:
        `input_word_ids` (`[CLS] a [SEP] (b [SEP])`, padded with 0 as
        `run_classifier.py` does), `input_mask` (1 on tokens, 0 on padding)
        and `input_type_ids` (1 on b and its `[SEP]`, 0 elsewhere).

    Example:
    >>> tokenizer = BertTokenizer("vocab.txt", lower_case=True, max_seq_length=8)
    >>> tokenizer(["Héllo, world!"])["input_word_ids"]
    # [[101, 7592, 1010, 2088, 999, 102, 0, 0]]  ([CLS] hello , world ! [SEP])
    """

    def __init__(self, vocab_file, lower_case=True, max_seq_length=128, name=None):
        super().__init__(name=name)
        if isinstance(max_seq_length, bool) or not isinstance(max_seq_length, (int, np.integer)):
            raise ValueError(f"max_seq_length must be an int, got {max_seq_length!r}")
        if max_seq_length < 2:
            raise ValueError(
                f"max_seq_length must be at least 2 to hold [CLS] and [SEP], got {max_seq_length}")
        self.vocab_file = vocab_file
        self.lower_case = bool(lower_case)
        self.max_seq_length = int(max_seq_length)

        tokens = _read_vocab(vocab_file)
        token_to_id = {}
        for index, token in enumerate(tokens):
            if not token:
                continue  # an empty line keeps its id but matches nothing
            if token in token_to_id:
                raise ValueError(f"{vocab_file}: token {token!r} appears on lines "
                                 f"{token_to_id[token] + 1} and {index + 1}")
            token_to_id[token] = index
        missing = [t for t in _SPECIAL_TOKENS if t not in token_to_id]
        if missing:
            raise ValueError(f"{vocab_file} lacks the special token(s) {', '.join(missing)}; "
                             f"a BERT vocabulary needs all of {', '.join(_SPECIAL_TOKENS)}")
        self.vocab_size = len(tokens)
        self.pad_id = token_to_id["[PAD]"]
        self.unk_id = token_to_id["[UNK]"]
        self.cls_id = token_to_id["[CLS]"]
        self.sep_id = token_to_id["[SEP]"]

        # One OOV bucket, as tf-text builds from a file name; the WordPiece
        # kernel only asks the table which pieces exist, and unknown words
        # are mapped to "[UNK]" before the id lookup.
        table = tf.lookup.StaticVocabularyTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(token_to_id), tf.string),
                tf.constant(list(token_to_id.values()), tf.int64)),
            num_oov_buckets=1)
        self._tokenizer = tf_text.BertTokenizer(
            table, token_out_type=tf.int32, unknown_token="[UNK]", lower_case=self.lower_case)
        self._vocab = tf.constant(tokens, tf.string)  # id -> token

    def tokenize(self, texts):
        """Wordpiece ids of each text, no special tokens, no truncation.

        Args:
            texts: a list of str, a 1-D numpy array of str/bytes, or a 1-D
                `tf.string` tensor `[batch_size]`.

        Returns:
            An int32 `tf.RaggedTensor` `[batch_size, (num_wordpieces)]`.
        """
        texts = self._as_batch(texts, "texts")
        return self._tokenizer.tokenize(texts).merge_dims(-2, -1)

    def tokenize_with_offsets(self, texts):
        """Wordpiece ids of each text and the span of the text each piece came from.

        tf-text reports offsets in UTF-8 bytes of the text *after* its
        normalisation (when `lower_case`: NFKC case folding, NFD, accents
        removed; always: control and format characters turned into spaces),
        which stop lining up with the input at its first non-ASCII character
        ("Beyoncé" is 8 bytes, "beyonce" 7). They are mapped back here to
        characters of the input as given: each distinct character is
        normalised alone and its normalised bytes placed by a running sum.
        A text whose normalisation is not the concatenation of its characters'
        (a composition across characters; none in SQuAD) is aligned with
        `difflib` instead.

        For a piece of `text`, `text[start:end]` is the text it came from:
        `"Beyoncé"` -> `beyon` (0, 5), `##ce` (5, 7). A character that
        normalises to several pieces (`"½"` -> `1`, `##⁄`, `##2`) gives each
        of them that character; characters that normalise to nothing (a
        combining accent, a zero-width space) join the piece before them. An
        `[UNK]` piece spans its whole word (tf-text ends the `[UNK]` of a word
        over 100 bytes at `start + len("[UNK]")`).

        Eager only: the offsets are mapped with numpy.

        Args:
            texts: a list of str, a 1-D numpy array of str/bytes, or a 1-D
                `tf.string` tensor `[batch_size]`.

        Returns:
            `(ids, starts, ends)`, int32 `tf.RaggedTensor`s
            `[batch_size, (num_wordpieces)]`: `ids` as `tokenize(texts)`;
            `starts` / `ends` are character (code point) offsets into each
            text, as Python's `str` indexes it.
        """
        import difflib  # Only for the rare texts described above.

        def normalize(strings):  # As tf_text.BasicTokenizer.tokenize_with_offsets.
            if self.lower_case:
                strings = tf_text.case_fold_utf8(strings)
                strings = tf_text.normalize_utf8(strings, "NFD")
                strings = tf.strings.regex_replace(strings, r"\p{Mn}", "")
            return tf.strings.regex_replace(strings, r"\p{Cc}|\p{Cf}", " ")

        texts = self._as_batch(texts, "texts")
        ids, byte_starts, byte_ends = self._tokenizer.tokenize_with_offsets(texts)
        ids = ids.merge_dims(-2, -1)
        piece_splits = ids.row_splits.numpy()
        flat_ids = ids.flat_values.numpy()
        byte_starts = byte_starts.merge_dims(-2, -1).flat_values.numpy()
        byte_ends = byte_ends.merge_dims(-2, -1).flat_values.numpy()

        chars = tf.strings.unicode_split(texts, "UTF-8")
        char_splits = chars.row_splits.numpy()
        unique_chars, char_index = tf.unique(chars.flat_values)
        normalized_chars = tf.gather(normalize(unique_chars), char_index)
        char_norm_len = tf.strings.length(normalized_chars).numpy()
        normalized_texts = normalize(texts)
        by_char = tf.strings.reduce_join(
            tf.RaggedTensor.from_row_splits(normalized_chars, char_splits), axis=-1)
        for row in np.flatnonzero((by_char != normalized_texts).numpy()):
            # Map the row's byte offsets into the concatenation of its
            # characters' normalisations, block by block.
            pieces = slice(piece_splits[row], piece_splits[row + 1])
            actual, joined = normalized_texts[row].numpy(), by_char[row].numpy()
            to_start = np.zeros(len(actual) + 1, np.int64)
            to_end = np.zeros(len(actual) + 1, np.int64)
            matcher = difflib.SequenceMatcher(None, actual, joined, autojunk=False)
            for tag, i1, i2, j1, j2 in matcher.get_opcodes():
                if tag == "equal":
                    to_start[i1:i2 + 1] = to_end[i1:i2 + 1] = np.arange(j1, j2 + 1)
                else:
                    to_start[i1:i2] = j1
                    to_end[i1 + 1:i2 + 1] = j2
            to_start[len(actual)] = to_end[len(actual)] = len(joined)
            byte_starts[pieces] = to_start[byte_starts[pieces]]
            byte_ends[pieces] = to_end[byte_ends[pieces]]

        # The whole batch at once: the rows' characters and normalised bytes
        # laid end to end, so that one searchsorted serves every row.
        norm_end = np.cumsum(char_norm_len)
        norm_start = norm_end - char_norm_len
        row_base = np.concatenate([[0], norm_end])[char_splits[:-1]]
        piece_row = np.repeat(np.arange(len(piece_splits) - 1), np.diff(piece_splits))
        first_char = char_splits[piece_row]
        num_chars = char_splits[piece_row + 1] - first_char
        start_at = byte_starts + row_base[piece_row]
        end_at = byte_ends + row_base[piece_row]
        # A piece starts at the character holding its first normalised byte
        # (characters normalised to nothing are skipped) and ends after the
        # character holding its last byte and any empty ones that follow it.
        starts = np.searchsorted(norm_end, start_at, side="right") - first_char
        ends = np.maximum(np.searchsorted(norm_end, end_at, side="right"),
                          np.searchsorted(norm_start, end_at, side="left")) - first_char
        starts = np.clip(starts, 0, num_chars)
        ends = np.clip(ends, starts, num_chars)

        for piece in np.flatnonzero(flat_ids == self.unk_id):
            row = piece_row[piece]
            text = texts[row].numpy().decode("utf-8")
            limit = starts[piece + 1] if piece + 1 < piece_splits[row + 1] else len(text)
            end = ends[piece]
            while end < limit and not text[end].isspace():
                end += 1
            ends[piece] = end
        return (ids,
                tf.RaggedTensor.from_row_splits(starts.astype(np.int32), piece_splits),
                tf.RaggedTensor.from_row_splits(ends.astype(np.int32), piece_splits))

    def __call__(self, texts_a, texts_b=None):
        texts_a = self._as_batch(texts_a, "texts_a")
        pieces_a = self._tokenizer.tokenize(texts_a).merge_dims(-2, -1)
        length_a = tf.cast(pieces_a.row_lengths(), tf.int32)
        if texts_b is None:
            segments = [pieces_a]
            lengths = [tf.minimum(length_a, self.max_seq_length - 2)]
        else:
            if self.max_seq_length < 3:
                raise ValueError(f"max_seq_length must be at least 3 for text pairs "
                                 f"([CLS] a [SEP] b [SEP]), got {self.max_seq_length}")
            texts_b = self._check_same_batch(texts_a, self._as_batch(texts_b, "texts_b"))
            pieces_b = self._tokenizer.tokenize(texts_b).merge_dims(-2, -1)
            length_b = tf.cast(pieces_b.row_lengths(), tf.int32)
            segments = [pieces_a, pieces_b]
            lengths = truncated_pair_lengths(length_a, length_b, self.max_seq_length - 3)
        return self._pack(segments, lengths)

    def _pack(self, segments, lengths):
        """`[CLS] s0 [SEP] (s1 [SEP])` with dense ops, keeping `lengths[i]` pieces of s_i.

        Packing on dense `[batch_size, max_seq_length]` grids (each output
        position gathers from the segment it falls in) instead of ragged
        concatenation keeps the traced graph small: ragged ops made tracing
        inside `tf.function` and `tf.data` several times slower.
        """
        seq_length = self.max_seq_length
        positions = tf.range(seq_length, dtype=tf.int32)[tf.newaxis, :]  # [1, seq_length]
        batch_size = segments[0].nrows(out_type=tf.int32)
        word_ids = tf.fill([batch_size, seq_length], tf.constant(self.cls_id, tf.int32))
        word_ids = tf.where(positions == 0, word_ids, 0)
        type_ids = tf.zeros([batch_size, seq_length], tf.int32)
        start = tf.ones([batch_size, 1], tf.int32)  # where the current segment begins
        for index, (pieces, length) in enumerate(zip(segments, lengths)):
            end = start + length[:, tf.newaxis]  # the position of this segment's [SEP]
            # No segment keeps more than seq_length pieces, so the dense grid
            # is cut there; it never depends on the longest text of the batch.
            dense = pieces.to_tensor(default_value=0, shape=[None, seq_length])
            offsets = tf.clip_by_value(positions - start, 0, seq_length - 1)
            gathered = tf.gather(dense, offsets, batch_dims=1)
            word_ids = tf.where((positions >= start) & (positions < end), gathered, word_ids)
            word_ids = tf.where(positions == end, self.sep_id, word_ids)
            type_ids = tf.where((positions >= start) & (positions <= end), index, type_ids)
            start = end + 1
        mask = tf.cast(positions < start, tf.int32)
        return {"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": type_ids}

    def id_to_token(self, ids):
        """The vocabulary strings of int `ids` (a tensor or ragged tensor, any shape)."""
        if isinstance(ids, tf.RaggedTensor):
            return tf.ragged.map_flat_values(tf.gather, self._vocab, ids)
        return tf.gather(self._vocab, ids)

    def detokenize(self, ids):
        """Rough text of `[batch_size, seq]` ids (dense or ragged), for inspection.

        Drops `[PAD]`, `[CLS]` and `[SEP]`, joins the pieces with spaces and
        glues `##` continuations to the previous piece, as BERT's own
        debugging output does; lower-casing and punctuation splitting are not
        undone. Returns a `tf.string` tensor `[batch_size]`.
        """
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(ids))
        keep = (tf.not_equal(ids, self.pad_id) & tf.not_equal(ids, self.cls_id)
                & tf.not_equal(ids, self.sep_id))
        tokens = self.id_to_token(tf.ragged.boolean_mask(ids, keep))
        text = tf.strings.reduce_join(tokens, axis=-1, separator=" ")
        return tf.strings.regex_replace(text, " ##", "")

    @staticmethod
    def _as_batch(texts, name):
        """`texts` as a 1-D tf.string tensor, or a readable error."""
        if isinstance(texts, (str, bytes)):
            raise ValueError(f"{name} must be a batch (a list, 1-D array or 1-D tensor) of "
                             f"strings, got a single string; wrap it in a list: [{texts!r}]")
        if isinstance(texts, tf.RaggedTensor):
            raise ValueError(f"{name} must be a dense 1-D string tensor, got a RaggedTensor")
        if not tf.is_tensor(texts):
            if isinstance(texts, np.ndarray) and texts.dtype.kind == "U":
                texts = np.char.encode(texts, "utf-8")
            try:
                texts = tf.convert_to_tensor(texts, dtype=tf.string)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{name} must hold strings: {e}") from None
        if texts.dtype != tf.string:
            raise ValueError(f"{name} must be a tf.string tensor, got dtype {texts.dtype.name}")
        if texts.shape.rank is not None and texts.shape.rank != 1:
            raise ValueError(f"{name} must be 1-D [batch_size], got shape {texts.shape}")
        return tf.ensure_shape(texts, [None])

    @staticmethod
    def _check_same_batch(texts_a, texts_b):
        """texts_b, after checking it has as many rows as texts_a."""
        size_a, size_b = texts_a.shape[0], texts_b.shape[0]
        if size_a is not None and size_b is not None:
            if size_a != size_b:
                raise ValueError(f"texts_a and texts_b must have the same batch size, "
                                 f"got {size_a} and {size_b}")
            return texts_b
        check = tf.debugging.assert_equal(
            tf.shape(texts_a)[0], tf.shape(texts_b)[0],
            message="texts_a and texts_b must have the same batch size")
        with tf.control_dependencies([check]):
            return tf.identity(texts_b)


def encode(tokenizer, texts_a, texts_b=None, chunk_size=2048):
    """Tokenizes all texts into int32 arrays `[num_examples, max_seq_length]`."""
    parts = {name: [] for name in INPUT_NAMES}
    for start in range(0, len(texts_a), chunk_size):
        a = texts_a[start:start + chunk_size]
        b = None if texts_b is None else texts_b[start:start + chunk_size]
        out = tokenizer(a, b)
        for name in INPUT_NAMES:
            parts[name].append(np.asarray(out[name], dtype=np.int32))
    if not texts_a:
        return {n: np.zeros((0, tokenizer.max_seq_length), np.int32) for n in INPUT_NAMES}
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}
