# The book's two commands. Each creates the virtual environment (.venv) on first use and installs
# requirements.txt (which includes the book's own `utils` package), then does its job.
#   make book   build the HTML book into _build/html
#   make test   lint, unit tests, notebook re-execution (nbval) and the book build check
#   make assignments   the course assignments (otter-grader) into assignments/dist/

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: book test assignments clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build --warningiserror --keep-going .
	@echo "The book is in _build/html/index.html"

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

assignments: $(STAMP)
	$(BIN)/python assignments/build.py

clean:
	rm -rf _build
