from __future__ import annotations

import pytest

from retrieval.chunking import Chunk, chunk_corpus, chunk_document, is_hit, passage_overlap
from base.data import Document


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def test_windows_start_every_size_minus_overlap_and_last_ends_at_the_end():
    chunks = chunk_document(Document(id="d", text=words(10), title="T"), size=4, overlap=1)
    assert [(c.start_word, c.end_word) for c in chunks] == [(0, 4), (3, 7), (6, 10)]
    assert chunks[0].text == "w0 w1 w2 w3"
    assert chunks[1].text.split()[0] == chunks[0].text.split()[-1]  # one word of overlap
    assert [c.id for c in chunks] == ["d#0", "d#1", "d#2"]
    assert all(c.doc_id == "d" and c.title == "T" for c in chunks)


def test_last_window_is_not_swallowed_by_the_previous_one():
    # 9 words, size 4, step 3: windows 0-4, 3-7, 6-9; no extra window inside 6-9
    chunks = chunk_document(Document(id="d", text=words(9)), size=4, overlap=1)
    assert [(c.start_word, c.end_word) for c in chunks] == [(0, 4), (3, 7), (6, 9)]


def test_every_word_is_covered_and_whitespace_normalised():
    text = "alpha  beta\n\ngamma\tdelta epsilon"
    chunks = chunk_document(Document(id="d", text=text), size=2, overlap=0)
    assert [c.text for c in chunks] == ["alpha beta", "gamma delta", "epsilon"]


def test_short_and_empty_documents():
    assert [c.text for c in chunk_document(Document(id="s", text="just three words"), size=120, overlap=20)] == ["just three words"]
    assert chunk_document(Document(id="e", text="   \n "), size=4, overlap=1) == []


def test_corpus_keeps_document_order_and_identity():
    docs = [Document(id="a", text=words(5)), Document(id="b", text=words(3), title="Bee")]
    chunks = chunk_corpus(docs, size=3, overlap=1)
    assert [c.id for c in chunks] == ["a#0", "a#1", "b#0"]
    assert chunks[2].embedding_text == "Bee\nw0 w1 w2"
    assert Chunk.from_json(chunks[2].to_json()) == chunks[2]


@pytest.mark.parametrize("size,overlap", [(4, 4), (4, 5), (0, 0), (4, -1)])
def test_bad_settings_are_refused(size, overlap):
    with pytest.raises(ValueError):
        chunk_document(Document(id="d", text=words(10)), size=size, overlap=overlap)


GOLD = ("Mesophiles grow best in moderate temperature, typically between 25 and 40 degrees Celsius. "
        "They are often found living in or on the bodies of humans or other animals.")


def test_a_chunk_cut_from_the_gold_passage_is_a_hit():
    chunk = "typically between 25 and 40 degrees Celsius. They are often found living"
    assert passage_overlap(chunk, GOLD) == 1.0
    assert is_hit(chunk, GOLD)


def test_a_chunk_holding_the_whole_gold_passage_is_a_hit():
    chunk = "Unrelated lead-in sentence here. " + GOLD + " And some trailing words about other things."
    assert passage_overlap(chunk, GOLD) == 1.0
    assert is_hit(chunk, GOLD)


def test_half_overlap_is_the_threshold():
    # shorter side has 4 trigrams: a b c, b c d, c d e, d e f; the longer text holds the first two
    assert passage_overlap("a b c d e f", "a b c d x y z q") == pytest.approx(2 / 4)
    assert is_hit("a b c d e f", "a b c d x y z q")
    assert passage_overlap("a b c d e f", "a b c x y z q") == pytest.approx(1 / 4)
    assert not is_hit("a b c d e f", "a b c x y z q")


def test_unrelated_text_sharing_stopwords_is_not_a_hit():
    other = ("The mitochondria is the powerhouse of the cell and it is found in most of the cells "
             "of animals, where it makes energy for the body in or on the tissue.")
    assert passage_overlap(other, GOLD) < 0.2
    assert not is_hit(other, GOLD)


def test_case_and_punctuation_do_not_matter_and_tiny_texts_use_words():
    assert is_hit("MESOPHILES grow best, in moderate", GOLD)
    assert passage_overlap("Paris", "the capital is paris") == 1.0
    assert passage_overlap("", GOLD) == 0.0
