"""The picture report: figures drawn from the catalog's views (one function per figure, each running the DuckDB
query its caption shows) and the self-contained HTML page that holds them. Pure library: it reads a DuckDB
connection and returns text; `scoring/stages/picture_report.py` picks the students and writes the file."""
