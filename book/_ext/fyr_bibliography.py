"""Sphinx extension of the book: the reference list is labelled the way the text cites.

The text cites author–year (``bibtex_reference_style: author_year``: "Bengio et al., 2013"), but
sphinxcontrib-bibtex labels the reference list with the pybtex style's labels ("[BLC13]" for the default
``alpha`` style). The style registered here, ``author_year``, is pybtex's ``alpha`` style (entries sorted by
author, year and title) with labels built like the in-text references: "Krishnamoorthi, 2018",
"Lin and Han, 2019", "Bengio et al., 2013". Labels that would coincide get a letter after the year.
"""

from collections import Counter
from string import ascii_lowercase

import pybtex.plugin
from pybtex.style.formatting.alpha import Style as AlphaStyle
from pybtex.style.labels import BaseLabelStyle

STYLE = "author_year"


class AuthorYearLabelStyle(BaseLabelStyle):
    def __init__(self):
        self.names = pybtex.plugin.find_plugin("pybtex.style.names", "last")()

    def _name(self, person) -> str:
        return self.names.format(person, abbr=True).format().render_as("text")

    def label(self, entry) -> str:
        persons = entry.persons.get("author") or entry.persons.get("editor") or []
        if not persons:
            who = entry.fields.get("title", entry.key)
        elif len(persons) == 1:
            who = self._name(persons[0])
        elif len(persons) == 2:
            who = f"{self._name(persons[0])} and {self._name(persons[1])}"
        else:
            who = f"{self._name(persons[0])} et al."
        year = entry.fields.get("year", "n.d.")
        return f"{who}, {year}"

    def format_labels(self, sorted_entries):
        labels = [self.label(entry) for entry in sorted_entries]
        counts, seen = Counter(labels), Counter()
        for label in labels:
            if counts[label] == 1:
                yield label
            else:
                yield label + ascii_lowercase[seen[label]]
                seen[label] += 1


class AuthorYearStyle(AlphaStyle):
    default_label_style = AuthorYearLabelStyle


def setup(app):
    pybtex.plugin.register_plugin("pybtex.style.formatting", STYLE, AuthorYearStyle, force=True)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
