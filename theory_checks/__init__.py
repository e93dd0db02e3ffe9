"""One theory check per claim of docs/checks.rst; see refbilevel.checks for the machinery.

Each module runs alone (``python theory_checks/<name>.py [--quick|--full] [--out DIR]``)
and through ``refbilevel check <ID>``.
"""
