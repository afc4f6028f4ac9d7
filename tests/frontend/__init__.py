"""Helpers of the live front-end test (``tests/test_frontend.py``): a small copy of a chapter notebook
(:mod:`.notebooks`), the classic-Notebook environment and the Jupyter servers (:mod:`.servers`), and the
browser side — running the cells and moving the explorer's controls as a reader would (:mod:`.pages`)."""
