"""What the sandbox answers besides JSON: Restlet's HTML error page, the login and home pages,
and listings as CSV or as an HTML table. The scripts never show these to a user; they must
recognise them."""

from __future__ import annotations

import csv
import html
import io

Row = dict[str, str]

XNAT_VERSION = "1.8.10"


def error_page(status: int, message: str) -> bytes:
    """A small error page in the style of Restlet, the message in an <h3>."""
    return (f"<html>\n<head>\n   <title>Status page</title>\n</head>\n<body>\n"
            f"<h3>{html.escape(message)}</h3><p>You can get technical details "
            f"<a href=\"http://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html\">here</a> "
            f"(status {status}).<br>\nPlease continue your visit at our <a href=\"/\">home page</a>.\n"
            f"</p>\n</body>\n</html>\n").encode()


def login_page(prefix: str) -> bytes:
    """XNAT's login page: what a browser, or a spoiled listing, gets instead of data."""
    return (f"<!DOCTYPE html>\n<html>\n<head><title>XNAT</title></head>\n<body>\n"
            f"<div id=\"login_box\"><form name=\"form1\" method=\"post\" action=\"{prefix}/login\">\n"
            f"<label for=\"username\">User</label><input type=\"text\" name=\"username\">\n"
            f"<label for=\"password\">Password</label><input type=\"password\" name=\"password\">\n"
            f"<input type=\"submit\" value=\"Login\"></form></div>\n</body>\n</html>\n").encode()


def home_page(user: str) -> bytes:
    return (f"<!DOCTYPE html>\n<html>\n<head><title>XNAT</title></head>\n<body>\n"
            f"<span id=\"user_info\">Logged in as: &nbsp;<a id=\"username-link\" "
            f"href=\"/app/template/XDATScreen_UpdateUser.vm\">{html.escape(user)}</a></span>\n"
            f"<p>XNAT sandbox {XNAT_VERSION}: a local stand-in for an XNAT server.</p>\n"
            f"</body>\n</html>\n").encode()


def rows_as_csv(rows: list[Row]) -> bytes:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue().encode()


def rows_as_html(rows: list[Row]) -> bytes:
    columns = list(rows[0]) if rows else []
    head = "".join(f"<th>{html.escape(name)}</th>" for name in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(row.get(name, ''))}</td>" for name in columns) + "</tr>"
                   for row in rows)
    return f"<html><body><table><tr>{head}</tr>{body}</table></body></html>".encode()
