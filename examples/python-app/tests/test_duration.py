import unittest

from textkit import format_duration, parse_duration


class ParseDurationTest(unittest.TestCase):
    def test_a_bare_number_is_seconds(self):
        self.assertEqual(parse_duration("90"), 90)

    def test_adds_up_compact_parts(self):
        self.assertEqual(parse_duration("1h30m"), 5400)

    def test_accepts_long_unit_names_and_spaces(self):
        self.assertEqual(parse_duration("2 days 1 hour 5 seconds"), 2 * 86400 + 3600 + 5)

    def test_is_case_insensitive(self):
        self.assertEqual(parse_duration("1H 1M"), 3660)

    def test_rejects_an_unknown_unit(self):
        with self.assertRaisesRegex(ValueError, "invalid duration"):
            parse_duration("3 fortnights")

    def test_rejects_trailing_garbage(self):
        with self.assertRaises(ValueError):
            parse_duration("1h 30")

    def test_rejects_empty_text(self):
        with self.assertRaises(ValueError):
            parse_duration("")


class FormatDurationTest(unittest.TestCase):
    def test_formats_the_largest_units_first(self):
        self.assertEqual(format_duration(93784), "1d 2h 3m 4s")

    def test_skips_zero_units(self):
        self.assertEqual(format_duration(3605), "1h 5s")

    def test_zero_is_zero_seconds(self):
        self.assertEqual(format_duration(0), "0s")

    def test_rejects_negative_durations(self):
        with self.assertRaises(ValueError):
            format_duration(-1)

    def test_round_trips_through_parse(self):
        for seconds in (1, 59, 60, 3599, 86400, 1234567):
            with self.subTest(seconds=seconds):
                self.assertEqual(parse_duration(format_duration(seconds)), seconds)


if __name__ == "__main__":
    unittest.main()
