"""Tests of the reference request decoder against PROTOCOL.md's examples and rules."""

import variantd_requests as r


def test_the_assign_example_decodes():
    line = b'{"id":1,"op":"assign","experiment":"checkout-prompt","unit":"user-42","attributes":{"country":"US"}}'
    assert r.decode(line) == {"id": {"number": "1"}, "op": "assign", "experiment": "checkout-prompt",
                              "unit": "user-42", "attributes": {"country": "US"}}


def test_a_number_id_is_echoed_as_written():
    for text in ("9007199254740993", "1.0", "1E2", "-0"):
        assert r.decode(b'{"id":%s,"op":"health"}' % text.encode())["id"] == {"number": text}


def test_json_that_python_reads_but_the_protocol_refuses():
    for line in (b'{"id":NaN,"op":"health"}', b'{"id":1e400,"op":"health"}', b'{"id":"\\ud800","op":"health"}',
                 b'{"op":"health","op":"health"}', b'[' * 33 + b']' * 33, b'[' * 5000, b'{"id":"\xed\xa0\x80"}'):
        assert r.decode(line) == {"id": None, "op": "unknown", "error": "invalid_json"}, line


def test_a_bad_id_is_answered_with_a_null_id():
    assert r.decode(b'{"id":[1],"op":"health"}') == {"id": None, "op": "health", "error": "invalid_field"}


def test_units_are_limited_in_bytes_not_characters():
    ok = r.decode(('{"op":"assign","experiment":"e","unit":"' + "é" * 512 + '"}').encode())
    too_long = r.decode(('{"op":"assign","experiment":"e","unit":"' + "é" * 513 + '"}').encode())
    assert "error" not in ok and too_long["error"] == "invalid_field"


def test_render_checks_its_variables_before_unknown_fields():
    assert r.decode(b'{"op":"render","prompt":"p","variables":{"a":{}},"bogus":1}')["error"] == "invalid_variables"


def test_a_batch_reports_each_bad_entry_and_keeps_the_rest():
    decoded = r.decode(b'{"op":"batch","records":[7,{"experiment":"e","variant":"v","metrics":{"error":true}}]}')
    assert decoded["records"][0] == {"error": "invalid_field"} and decoded["records"][1]["variant"] == "v"


def test_the_vectors_are_deterministic():
    assert r.random_lines(3, 50) == r.random_lines(3, 50)
