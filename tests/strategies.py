"""Hypothesis strategies for text that stresses a BPE tokenizer."""

from hypothesis import strategies as st

WHITESPACE = " \t\n\r\x0b\x0c\u00a0\u1680\u2000\u2003\u2028\u202f\u3000"
DIGITS_PUNCTUATION = "0123456789.,;:!?'\"-_()[]{}<>/\\|@#$%^&*+=~`"
FRAGMENTS = [
    "'s",
    "'S",
    "'ll",
    "'LL",
    "'ve",
    "'re",
    "'d",
    "'m",
    "'t",
    "n't",
    " the",
    "The",
    "HTTP",
    "camelCase",
    "snake_case",
    "  ",
    "\n\n",
    "\r\n",
    "\t",
    "123456",
    "1,000.5",
    "é",
    "e\u0301",
    "中文",
    "🌍",
    "👩‍👧",
    "<|endoftext|>",
    '{"a": 1}',
    "    ",
    " \n",
    "ǅ",
    "ᾈ",
    "Ⅻ",
    "٣",
    "x²",
]

unicode_text = st.text(max_size=200)
whitespace_heavy = st.text(alphabet=st.sampled_from(WHITESPACE + "ab1."), max_size=200)
digits_punctuation = st.text(alphabet=st.sampled_from(DIGITS_PUNCTUATION + " \nA"), max_size=200)
fragments = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)

any_text = st.one_of(unicode_text, whitespace_heavy, digits_punctuation, fragments)
