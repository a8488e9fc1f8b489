import unittest

from textkit import Version


class VersionTest(unittest.TestCase):
    def test_parses_and_prints_back(self):
        self.assertEqual(str(Version.parse("v1.2.3-beta.2")), "1.2.3-beta.2")

    def test_compares_numerically_not_as_text(self):
        self.assertLess(Version.parse("1.2.0"), Version.parse("1.10.0"))

    def test_a_prerelease_comes_before_its_release(self):
        self.assertLess(Version.parse("1.0.0-rc.1"), Version.parse("1.0.0"))

    def test_numeric_prerelease_parts_compare_as_numbers(self):
        self.assertLess(Version.parse("1.0.0-rc.2"), Version.parse("1.0.0-rc.10"))

    def test_numeric_prerelease_parts_come_before_words(self):
        self.assertLess(Version.parse("1.0.0-1"), Version.parse("1.0.0-alpha"))

    def test_sorts_a_list(self):
        versions = [Version.parse(v) for v in ("2.0.0", "1.0.0", "1.0.0-alpha", "1.1.0")]
        self.assertEqual([str(v) for v in sorted(versions)],
                         ["1.0.0-alpha", "1.0.0", "1.1.0", "2.0.0"])

    def test_equal_versions_hash_alike(self):
        self.assertEqual(len({Version.parse("1.2.3"), Version.parse("v1.2.3")}), 1)

    def test_bumps_each_part(self):
        version = Version.parse("1.2.3-rc.1")
        self.assertEqual(str(version.bump("major")), "2.0.0")
        self.assertEqual(str(version.bump("minor")), "1.3.0")
        self.assertEqual(str(version.bump("patch")), "1.2.4")

    def test_rejects_an_unknown_bump(self):
        with self.assertRaises(ValueError):
            Version.parse("1.0.0").bump("micro")

    def test_rejects_malformed_versions(self):
        for text in ("1.2", "1.2.3.4", "one.two.three", ""):
            with self.subTest(text=text):
                with self.assertRaises(ValueError):
                    Version.parse(text)

    def test_is_not_equal_to_a_string(self):
        self.assertNotEqual(Version.parse("1.0.0"), "1.0.0")

    def test_repr_names_the_version(self):
        self.assertEqual(repr(Version.parse("1.0.0")), "Version('1.0.0')")


if __name__ == "__main__":
    unittest.main()
