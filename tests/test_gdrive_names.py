"""Local names for a Google Drive folder's children (duplicates, Docs, odd names):
the rules of cloudgw/remotes/gdrive_names.py, and properties over random folders."""

from __future__ import annotations

from hypothesis import given, strategies as st

from cloudgw.remotes.gdrive_names import FOLDER_MIME, GOOGLE_APPS, Child, display_names, suffixed


def names(*children: Child) -> list[str]:
    shown = display_names(children)
    return [shown[c.id] for c in children]


def test_the_oldest_keeps_the_name_and_the_others_get_serials():
    a = Child("b-id", "report.pdf", created="2026-01-02T00:00:00.000Z")
    b = Child("a-id", "report.pdf", created="2026-01-01T00:00:00.000Z")
    c = Child("c-id", "report.pdf", created="2026-01-02T00:00:00.000Z")  # same time as a: the id decides
    assert names(a, b, c) == ["report (1).pdf", "report.pdf", "report (2).pdf"]


def test_a_file_and_a_folder_of_one_name_both_appear():
    folder = Child("1", "Photos", FOLDER_MIME, "2026-01-01T00:00:00Z")
    file = Child("2", "Photos", created="2026-01-02T00:00:00Z")
    older_folder = Child("0", "v1.2", FOLDER_MIME, "2026-01-01T00:00:00Z")
    dup_folder = Child("3", "v1.2", FOLDER_MIME, "2026-01-02T00:00:00Z")
    assert names(folder, file, older_folder, dup_folder) == ["Photos", "Photos (1)", "v1.2", "v1.2 (1)"]


def test_google_docs_show_as_the_format_they_export_to():
    assert names(Child("1", "Budget", GOOGLE_APPS + "spreadsheet"), Child("2", "Plan", GOOGLE_APPS + "document"),
                 Child("3", "Deck.pptx", GOOGLE_APPS + "presentation"), Child("4", "Logo", GOOGLE_APPS + "drawing"),
                 Child("5", "Survey", GOOGLE_APPS + "form")) == [
        "Budget.xlsx", "Plan.docx", "Deck.pptx", "Logo.svg", "Survey"]
    # a Doc and an uploaded .docx of the same name: both, the older plain
    assert names(Child("1", "Plan", GOOGLE_APPS + "document", "2026-01-01T00:00:00Z"),
                 Child("2", "Plan.docx", created="2026-01-02T00:00:00Z")) == ["Plan.docx", "Plan (1).docx"]


def test_names_a_directory_cannot_hold_are_shown_otherwise():
    assert names(Child("1", "a/b"), Child("2", ""), Child("3", "."), Child("4", "..")) == ["a∕b", "_", "．", "．．"]


def test_a_serial_never_takes_a_name_a_file_already_has():
    assert names(Child("1", "x.txt", created="1"), Child("2", "x (1).txt", created="2"),
                 Child("3", "x.txt", created="3")) == ["x.txt", "x (1).txt", "x (2).txt"]


def test_suffixes_fit_in_255_bytes():
    long = "é" * 200 + ".txt"
    assert len(suffixed(long, 12).encode()) <= 255 and suffixed(long, 12).endswith(" (12).txt")
    assert suffixed("archive.tar.gz", 1) == "archive.tar (1).gz" and suffixed(".bashrc", 1) == ".bashrc (1)"


children_lists = st.lists(
    st.builds(Child, id=st.text("abcdef0123", min_size=1, max_size=6),
              name=st.sampled_from(["a", "a.txt", "a (1).txt", "A.txt", "b/c", "Photos", "."]),
              mime_type=st.sampled_from(["text/plain", FOLDER_MIME, GOOGLE_APPS + "document"]),
              created=st.sampled_from(["1", "2", "3"])),
    max_size=12, unique_by=lambda c: c.id)


@given(children_lists, st.randoms())
def test_names_are_distinct_and_depend_only_on_the_folder(children, rng):
    shown = display_names(children)
    assert len(set(shown.values())) == len(children)
    shuffled = list(children)
    rng.shuffle(shuffled)
    assert display_names(shuffled) == shown
    assert all(n and "/" not in n and n not in (".", "..") and len(n.encode()) <= 255 for n in shown.values())


@given(children_lists, st.sampled_from(["a", "a.txt", "a (1).txt", "Photos"]))
def test_a_child_created_later_never_renames_an_existing_one(children, name):
    newest = Child("zz-new", name, created="9")
    before = display_names(children)
    after = display_names([*children, newest])
    assert {k: v for k, v in after.items() if k != "zz-new"} == before
