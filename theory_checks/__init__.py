"""One theory check per claim of spec claims.md; see refbilevel.checks for the machinery.

Each module runs alone (``python theory_checks/<name>.py [--quick|--full] [--out DIR]``)
and through ``refbilevel check <ID>``.
"""
