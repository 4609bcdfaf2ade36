# Fails (exit 1, one line per function) when a function of a public header
# has no comment of its own: a comment ending on the line before it, or one
# on its own lines. A declaration that directly follows a documented one,
# with no blank line between, shares that comment (ct_add, ct_sub, ...
# under one comment). Run: awk -f check_docs.awk include/ctrain/*.h

FNR == 1 { in_comment = 0; prev_doc = 0; prev_kind = "" }

{
    line = $0
    # What the line is, outside comments: "blank", "comment" (only a
    # comment, or the end of one), "decl" (starts a function declaration),
    # or "code".
    had_comment = 0
    code = ""
    rest = line
    while (rest != "") {
        if (in_comment) {
            i = index(rest, "*/")
            had_comment = 1
            if (i == 0) { rest = ""; continue }
            in_comment = 0
            rest = substr(rest, i + 2)
            continue
        }
        i = index(rest, "/*")
        if (i == 0) { code = code rest; rest = ""; continue }
        code = code substr(rest, 1, i - 1)
        had_comment = 1
        in_comment = 1
        rest = substr(rest, i + 2)
    }
    if (code ~ /^[ \t]*$/) kind = had_comment ? "comment" : "blank"
    else if (code ~ /^[a-z].*[ *]ct_[a-z0-9_]+\(/ && code !~ /^typedef/) kind = "decl"
    else kind = "code"

    if (kind == "decl") {
        # A declaration running over several lines: its comment may sit on
        # any of them, so it is judged once it ends with ';'.
        pending = 1
        pending_name = code
        sub(/\(.*/, "", pending_name)
        sub(/.*[ *]/, "", pending_name)
        pending_doc = had_comment || prev_kind == "comment" || (prev_kind == "decl_end" && prev_doc)
        pending_file = FILENAME
        pending_line = FNR
    } else if (pending && had_comment) {
        pending_doc = 1
    }
    if (pending && code ~ /;/) {
        pending = 0
        if (!pending_doc) {
            printf "%s:%d: %s has no comment\n", pending_file, pending_line, pending_name
            bad++
        }
        prev_doc = pending_doc
        prev_kind = "decl_end"
        next
    }
    if (!pending) prev_kind = kind == "comment" && !in_comment && code ~ /^[ \t]*$/ ? "comment" : kind
}

END { exit bad > 0 }
