# Turns the plain C comments of ctrain's public headers into Doxygen
# comments as Doxygen reads them (Doxyfile: FILTER_PATTERNS), so the headers
# stay written for people and still give a reference:
#
#   the first comment of the file          -> the file's description (@file)
#   a comment that starts a line           -> documents what follows it
#   a comment after code on the same line  -> documents that code (/**<)
#   a section rule, "/* ---- name ---- */" -> stays a plain comment
#   one comment over several declarations -> documents each of them
#     (ct_graph_seed under ct_graph_set_seed's comment): the run of
#     declarations up to the next blank line or comment becomes a Doxygen
#     member group, and DISTRIBUTE_GROUP_DOC hands the comment to every
#     member that has none of its own
#
# In prose, characters Doxygen would take for markup are escaped: "\" and
# "@" (commands), "&" (entities), "#" (links), and "<" before a letter
# ("<name>.weight" is no HTML tag). Example code, indented four or more spaces past the
# comment's "*", is left as it is: Doxygen shows it verbatim.
# The output has the input's lines one for one, so Doxygen's line numbers
# stay the header's.

# Every c of s preceded by a backslash, by index and substr: the awks
# (mawk, gawk, busybox) disagree on backslashes in gsub's replacement.
function escape_char(s, c,    out, i) {
    out = ""
    while ((i = index(s, c)) > 0) {
        out = out substr(s, 1, i - 1) "\\" c
        s = substr(s, i + 1)
    }
    return out s
}

function escape(s,    out, i) {
    if (s ~ /^[ \t]*\*?     /) return s  # a line of example code
    s = escape_char(s, "\\")
    s = escape_char(s, "@")
    s = escape_char(s, "&")
    s = escape_char(s, "#")
    out = ""
    while (match(s, /<[A-Za-z]/)) {
        out = out substr(s, 1, RSTART - 1) "\\<"
        s = substr(s, RSTART + 1)
    }
    return out s
}

BEGIN { in_comment = 0; doc = 0; seen_code = 0; file_doc = 0; file_done = 0; n = 0 }

# Converts one line; sets opens_doc when a doc comment starts the line and
# ends_at_comment when the line is still inside a comment at its end.
function convert(line,    rest, out, i, body, code) {
    rest = line
    out = ""
    opens_doc = 0
    while (rest != "") {
        if (in_comment) {
            i = index(rest, "*/")
            if (i == 0) {
                out = out (doc ? escape(rest) : rest)
                rest = ""
                continue
            }
            body = substr(rest, 1, i - 1)
            out = out (doc ? escape(body) : body)
            if (file_doc) {
                out = out (body ~ /[^ \t]$/ ? " " : "") "@file "
                file_doc = 0
                file_done = 1
            }
            out = out "*/"
            rest = substr(rest, i + 2)
            in_comment = 0
            continue
        }
        i = index(rest, "/*")
        if (i == 0) {
            if (rest ~ /[^ \t]/) seen_code = 1
            out = out rest
            rest = ""
            continue
        }
        code = substr(rest, 1, i - 1)
        rest = substr(rest, i + 2)
        out = out code
        in_comment = 1
        if (rest ~ /^[*!]/ || rest ~ /^ *--/) {
            doc = 0                          # already Doxygen's, or a section rule
            out = out "/*"
        } else if (out ~ /[^ \t]/) {
            seen_code = 1
            doc = 1
            out = out "/**<"
        } else {
            doc = 1
            if (!seen_code && !file_done) file_doc = 1
            else opens_doc = 1
            out = out "/**"
        }
    }
    return out
}

{
    n++
    src[n] = $0
    out[n] = convert($0)
    doc_start[n] = opens_doc
    in_after[n] = in_comment
}

END {
    for (k = 1; k <= n; k++) {
        if (!doc_start[k]) continue
        e = k
        while (e <= n && in_after[e]) e++   # the comment's last line
        # The declarations that follow it: function declarations only (no
        # braces), up to a blank line, a comment or a preprocessor line.
        statements = 0
        last = 0
        for (j = e + 1; j <= n; j++) {
            if (src[j] ~ /^[ \t]*$/ || src[j] ~ /^[ \t]*(\/\*|#)/ || src[j] ~ /[{}]/) break
            statements += gsub(/;/, ";", src[j])
            last = j
        }
        if (statements >= 2 && src[last] ~ /\);/) {
            out[k] = "/** @{ */ " out[k]
            out[last] = out[last] " /** @} */"
        }
    }
    for (k = 1; k <= n; k++) print out[k]
}
