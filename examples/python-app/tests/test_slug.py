import unittest

from textkit import slugify


class SlugifyTest(unittest.TestCase):
    def test_lowercases_and_joins_words_with_dashes(self):
        self.assertEqual(slugify("Hello, World!"), "hello-world")

    def test_drops_accents(self):
        self.assertEqual(slugify("Crème brûlée à Paris"), "creme-brulee-a-paris")

    def test_never_starts_or_ends_with_the_separator(self):
        self.assertEqual(slugify("  --Release 1.0--  "), "release-1-0")

    def test_uses_the_given_separator(self):
        self.assertEqual(slugify("Hello World", separator="_"), "hello_world")

    def test_cuts_at_a_word_boundary_when_too_long(self):
        self.assertEqual(slugify("hello wonderful world", max_length=12), "hello")

    def test_keeps_a_whole_word_that_ends_exactly_at_the_limit(self):
        self.assertEqual(slugify("hello wonderful world", max_length=15), "hello-wonderful")

    def test_cuts_a_single_long_word(self):
        self.assertEqual(slugify("supercalifragilistic", max_length=5), "super")

    def test_empty_text_gives_an_empty_slug(self):
        self.assertEqual(slugify("!!!"), "")


if __name__ == "__main__":
    unittest.main()
