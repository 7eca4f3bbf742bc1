#!/usr/bin/env bats
# Conventions every program keeps: man pages that lint clean and whose
# SYNOPSIS is the program's usage(); --help, --version and bad flags;
# one meaning per flag letter; shell completions that offer exactly what
# the programs accept; make install and uninstall, and an installed tree
# that finds its own data; no colour, and progress only on a terminal.

bats_require_minimum_version 1.5.0
load helper
export LC_ALL=C

PROGS="invgen invstats invbuf invserve invctl"
INVCTL_CMDS="start stop status up down"

setup() {
	T=$BATS_TEST_TMPDIR
	PIDS=
}

teardown() { stop_pids; }

# render PAGE: the page as plain text, lines unwrapped.
render() { mandoc -T ascii -O width=1000 "$1" | sed 's/.\x08//g'; }
# section NAME PAGE: the body of one section of the rendered page.
section() { render "$2" | awk -v s="$1" '$0 == s { f = 1; next } /^[A-Z]/ { f = 0 } f'; }
# squash: whitespace runs to one space, none at the ends.
squash() { tr -s ' \t\n' '   ' | sed 's/^ //; s/ $//'; }
# tag_flags PAGE: the flags named in the tags of the OPTIONS list.
tag_flags() {
	section OPTIONS "$1" | sed -n 's/^     \(-[^ ].*\)/\1/p' | sed 's/  .*//' |
	    grep -oE '(^|[ ,])--?[a-zA-Z][a-zA-Z-]*' | tr -d ' ,' | sort -u
}
# long_flags TEXT: every --option in TEXT, one a line.
long_flags() { grep -oE -- '--[a-z][a-z-]*' <<< "$1" | sort -u; }

# offered WORD...: what the bash completion offers for the command line
# WORD... (the last word is the one being completed), sorted, one a line.
offered() {
	(
		. "$ROOT/completions/inv.bash"
		COMP_WORDS=("$@")
		COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"
		COMP_POINT=${#COMP_LINE}
		_inv
		printf '%s\n' "${COMPREPLY[@]}"
	) | LC_ALL=C sort
}
# takes_arg FLAG: whether the completion knows FLAG to take an argument.
takes_arg() { ( . "$ROOT/completions/inv.bash"; [ -n "$(_inv_argument "$1")" ] ); }

# accepts PROG [CMD] FLAG: PROG accepts FLAG. Run as PROG [CMD] FLAG
# [1] --no-such-flag, so that getopt reaches a usage error before the
# program does anything; an unknown FLAG is named in that error.
accepts() {
	local flag=${*: -1} val=
	takes_arg "$flag" && val=1
	run timeout 10 "${@:1:$#-1}" "$flag" $val --no-such-flag < /dev/null
	echo "$* -> $status: ${lines[0]}"
	[ "$status" -eq 0 ] || [ "$status" -eq 64 ]
	[[ "$output" != *"unrecognized option '$flag'"* ]]
	[[ "$output" != *"invalid option -- '${flag#-}'"* ]]
}
# letters TEXT: the letters of the short flags in usage TEXT, one a line.
letters() { grep -oE -- '\[-[a-zA-Z]+' <<< "$1" | sed 's/^\[-//' | fold -w1 | sort -u; }
# no_codes FILE...: no carriage return (progress) and no escape (colour).
no_codes() { ! grep -q $'[\r\e]' "$@"; }

@test "every man page is mandoc -Tlint -W warning clean, inv.7 among them" {
	[ -f "$ROOT/share/man/man7/inv.7" ]
	for page in "$ROOT"/share/man/man1/*.1 "$ROOT"/share/man/man7/inv.7; do
		run mandoc -Tlint -W warning "$page"
		echo "$page: $status: $output"
		[ "$status" -eq 0 ]
		[ -z "$output" ]
	done
}

@test "each program's man page SYNOPSIS is its usage(), word for word" {
	local man use
	for p in $PROGS; do
		page=$ROOT/share/man/man1/$p.1
		[ -f "$page" ] || { echo "$p has no man page"; false; }
		man=$(section SYNOPSIS "$page" | squash)
		use=$($p --help | sed '1s/^usage: *//' | squash)
		echo "$p page:  $man"
		echo "$p usage: $use"
		[ -n "$man" ]
		[ "$man" = "$use" ]
	done
}

@test "--help: usage on stdout, exit 0; --version: PROG VERSION" {
	version=$(sed -n 's/^VERSION *= *//p' "$ROOT/Makefile")
	[ "$version" = 0.1.0 ]
	for p in $PROGS; do
		run --separate-stderr $p --help
		[ "$status" -eq 0 ]
		[ -z "$stderr" ]
		[[ "${lines[0]}" == "usage: $p "* ]]
		run --separate-stderr $p --version
		[ "$status" -eq 0 ]
		[ -z "$stderr" ]
		[ "$output" = "$p $version" ]
	done
}

@test "an unknown flag: exit 64, one line saying so, then usage on stderr" {
	for p in $PROGS; do
		help=$($p --help)
		for bad in --no-such-flag -Z; do
			run --separate-stderr $p $bad
			echo "$p $bad: $status: $stderr"
			[ "$status" -eq 64 ]
			[ -z "$output" ]
			[[ "${stderr_lines[0]}" == "$p: "*"${bad#-}"* ]]
			[ "$(tail -n +2 <<< "$stderr")" = "$help" ]
		done
	done
	for c in $INVCTL_CMDS; do
		run --separate-stderr invctl $c --no-such-flag
		[ "$status" -eq 64 ]
		[ "${stderr_lines[0]}" = "invctl: unrecognized option '--no-such-flag'" ]
	done
}

@test "a flag letter means the same in every program" {
	local -A arg long
	local p l w f
	# In usage(): a letter takes the same argument everywhere, or none.
	for p in $PROGS; do
		u=$($p --help)
		for f in $(grep -oE '\[-[a-zA-Z]+\]' <<< "$u" | sed 's/[][-]//g' | fold -w1); do
			arg[$f]=${arg[$f]-none}
			[ "${arg[$f]}" = none ] || { echo "$p: -$f takes no argument, elsewhere '${arg[$f]}'"; false; }
		done
		while read -r l w; do
			l=${l:2}
			arg[$l]=${arg[$l]-$w}
			[ "${arg[$l]}" = "$w" ] || { echo "$p: -$l $w, elsewhere '${arg[$l]}'"; false; }
		done < <(grep -oE '\[-[a-zA-Z] [a-z][a-z:]*' <<< "$u")
		# --db and --redis take a URL wherever they are.
		for w in $(grep -oE -- '--(db|redis) [^] ]*' <<< "$u" | cut -d' ' -f2); do
			[ "$w" = url ] || { echo "$p: --db/--redis $w"; false; }
		done
	done
	[ "${arg[q]}" = none ]
	[ "${arg[v]}" = none ]
	[ "${arg[r]}" = rate ]
	[ "${arg[d]}" = seconds ]
	[ "${arg[l]}" = addr:port ]
	# In the man pages: a letter has the same long name everywhere.
	for page in "$ROOT"/share/man/man1/*.1; do
		while read -r l f; do
			long[$l]=${long[$l]-$f}
			[ "${long[$l]}" = "$f" ] || { echo "$page: $l is $f, elsewhere ${long[$l]}"; false; }
		done < <(section OPTIONS "$page" | sed -n 's/^     \(-[a-zA-Z]\), \(--[a-z-]*\).*/\1 \2/p')
	done
	[ "${long[-q]}" = --quiet ]
	[ "${long[-v]}" = --verbose ]
	[ "${long[-r]}" = --rate ]
	[ "${long[-d]}" = --duration ]
	[ "${long[-l]}" = --listen ]
	# And every program that has the letter has its long name too.
	for p in invgen invstats invbuf invserve; do
		for f in $(letters "$($p --help)"); do
			accepts $p "${long[-$f]}"
		done
	done
	for c in start status up; do
		for f in $(letters "$(grep "invctl $c " <<< "$(invctl --help)")"); do
			accepts invctl $c "${long[-$f]}"
		done
	done
}

@test "bash completion: invctl commands and flags, each exactly" {
	for p in $PROGS; do
		(. "$ROOT/completions/inv.bash"; complete -p $p) | grep -q -- "-F _inv $p\$"
	done
	[ "$(offered invctl '' | squash)" = "down start status stop up" ]
	[ "$(offered invctl st | squash)" = "start status stop" ]
	[ "$(offered invctl start - | squash)" = "--duration --rate --redis -d -r" ]
	[ "$(offered invctl start -r 5 -- | squash)" = "--duration --rate --redis" ]
	[ "$(offered invctl stop - | squash)" = "--redis" ]
	[ "$(offered invctl status - | squash)" = "--redis --watch -w" ]
	[ "$(offered invctl up - | squash)" = "--display-rate --listen --quiet --rundir -l -q" ]
	[ "$(offered invctl down - | squash)" = "--rundir" ]
	[ "$(offered invstats '' | squash)" = "rebuild show" ]
	[ "$(offered invserve --source '' | squash)" = "input redis" ]
	# a flag's value is not completed as a flag or a command
	[ -z "$(offered invgen -r '')" ]
	[ -z "$(offered invctl start --redis '')" ]
	mkdir "$T/dir.d" && : > "$T/file.f"
	[ "$(offered invctl up --rundir "$T/" | squash)" = "$T/dir.d" ]
	[ "$(offered invserve -i "$T/f" | squash)" = "$T/file.f" ]
}

@test "bash completion offers every flag of --help and the man page, and each is accepted" {
	local want got f c
	for p in invgen invstats invbuf invserve; do
		got=$(offered $p --)
		want=$(long_flags "$($p --help)")
		[ ! -f "$ROOT/share/man/man1/$p.1" ] ||
			want+=$'\n'$(tag_flags "$ROOT/share/man/man1/$p.1" | grep -- '^--')
		for f in $want; do
			grep -qx -- "$f" <<< "$got" || { echo "$p: $f not offered"; false; }
		done
		# the short ones: -q -v and each lettered flag of usage()
		got=$(offered $p -)
		for f in $(letters "$($p --help)"); do
			grep -qx -- "-$f" <<< "$got" || { echo "$p: -$f not offered"; false; }
		done
		for f in $(offered $p -); do
			accepts $p "$f"
		done
		# and the man page documents no flag the program refuses
		[ ! -f "$ROOT/share/man/man1/$p.1" ] ||
		for f in $(tag_flags "$ROOT/share/man/man1/$p.1"); do
			accepts $p "$f"
		done
	done
	[ "$(offered invbuf - | squash)" = "$(squash <<< '--help --max-line --mem-bytes
	    --mem-lines --no-redis --quiet --rate --redis --verbose --version -h -q -r -v')" ]
	# invctl: each command's line of usage(), and the man page's OPTIONS
	got=
	for c in $INVCTL_CMDS; do
		want=$(grep "invctl $c" <<< "$(invctl --help)" | grep -oE -- '--?[a-zA-Z][a-z-]*' | grep -vx -- "-$c" || true)
		for f in $want; do
			offered invctl $c - | grep -qx -- "$f" || { echo "invctl $c: $f not offered"; false; }
		done
		for f in $(offered invctl $c -); do
			accepts invctl $c "$f"
			got+=" $f"
		done
	done
	for f in $(tag_flags "$ROOT/share/man/man1/invctl.1"); do
		[[ " $got " == *" $f "* ]] || { echo "invctl: $f not offered"; false; }
	done
}

@test "zsh and fish completions name the same flags as bash's, and parse" {
	local f c
	# zsh: each program's _arguments; fish: each program's complete lines.
	for p in invgen invstats invbuf invserve invctl; do
		zsh_flags=$(sed -n "/^_inv_$p() {/,/^}/p" "$ROOT/completions/_inv" |
		    grep "'" | sed 's/_arguments[^:]*://; s/\[[^]]*\]//g' |
		    grep -oE -- "(^|[^a-zA-Z0-9_-])--?[a-zA-Z][a-z-]*" | grep -oE -- '-.*' | sort -u)
		fish_flags=$(grep "^complete -c $p " "$ROOT/completions/inv.fish" |
		    grep -oE -- ' -[sl] [a-z-]+' | sed 's/^ -s /-/; s/^ -l /--/' | sort -u)
		if [ $p = invctl ]; then
			bash_flags=$(for c in '' $INVCTL_CMDS; do offered invctl $c -; done | sort -u)
		else
			bash_flags=$(offered $p -)
		fi
		echo "$p bash: $(squash <<< "$bash_flags")"
		echo "$p zsh:  $(squash <<< "$zsh_flags")"
		echo "$p fish: $(squash <<< "$fish_flags")"
		[ "$zsh_flags" = "$bash_flags" ]
		[ "$fish_flags" = "$bash_flags" ]
	done
	grep -q '^#compdef invgen invstats invbuf invserve invctl$' "$ROOT/completions/_inv"
	bash -n "$ROOT/completions/inv.bash"
	# Checked only where the shells are; they are not installed for this.
	if command -v zsh > /dev/null; then zsh -n "$ROOT/completions/_inv"; fi
	if command -v fish > /dev/null; then fish -n "$ROOT/completions/inv.fish"; fi
}

@test "make install puts everything under DESTDIR, and uninstall removes it all" {
	R=$T/root
	run make -s -C "$ROOT" install PREFIX=/usr DESTDIR="$R"
	[ "$status" -eq 0 ]
	for p in $PROGS; do
		[ -x "$R/usr/bin/$p" ]
		[ "$(readlink "$R/usr/share/bash-completion/completions/$p")" = inv ]
		[ "$(readlink "$R/usr/share/fish/vendor_completions.d/$p.fish")" = inv.fish ]
		cmp "$ROOT/completions/inv.bash" "$R/usr/share/bash-completion/completions/$p"
	done
	for f in "$ROOT"/share/man/man1/*.1; do cmp "$f" "$R/usr/share/man/man1/${f##*/}"; done
	cmp "$ROOT/share/man/man7/inv.7" "$R/usr/share/man/man7/inv.7"
	cmp "$ROOT/completions/_inv" "$R/usr/share/zsh/site-functions/_inv"
	cmp "$ROOT/completions/inv.fish" "$R/usr/share/fish/vendor_completions.d/inv.fish"
	diff -r "$ROOT/share/www" "$R/usr/share/inv/www"
	diff -r "$ROOT/share/words" "$R/usr/share/inv/words"
	for f in "$ROOT"/sql/*.sql; do cmp "$f" "$R/usr/share/inv/sql/${f##*/}"; done
	[ -x "$R/usr/share/inv/sql/migrate" ]
	# nothing else: the count of files and links is what was checked
	n=$(find "$R" -type f -o -type l | wc -l)
	want=$(( $(echo $PROGS | wc -w) * 3 + 3
	    + $(ls "$ROOT"/share/man/man1/*.1 | wc -l) + 1
	    + $(find "$ROOT/share/www" "$ROOT/share/words" -type f | wc -l)
	    + $(ls "$ROOT"/sql/*.sql | wc -l) + 1 ))
	[ "$n" -eq "$want" ]

	run make -s -C "$ROOT" uninstall PREFIX=/usr DESTDIR="$R"
	[ "$status" -eq 0 ]
	run find "$R" -type f -o -type l
	echo "left: $output"
	[ -z "$output" ]
}

@test "an installed tree finds its word lists and its page beside its bin/" {
	R=$T/root
	make -s -C "$ROOT" install PREFIX=/usr DESTDIR="$R" > /dev/null
	# the programs were built for another prefix; they must not need it
	# a word list of one word shows which lists were read
	echo Zyzzyva > "$R/usr/share/inv/words/first.txt"
	run --separate-stderr env -u INV_DATADIR "$R/usr/bin/invgen" -n 3 --no-db -q
	echo "$output $stderr"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 3 ]
	[ "$(jq -r '.seller_name, .buyer_name' <<< "$output" | cut -d' ' -f1 | sort -u)" = Zyzzyva ]

	# invserve serves the installed page, not the source tree's
	echo '<!-- installed copy -->' >> "$R/usr/share/inv/www/index.html"
	env -u INV_DATADIR -u DATABASE_URL -u REDIS_URL \
	    "$R/usr/bin/invserve" -v -l 127.0.0.1:0 < /dev/null 2> "$T/serve.err" 3>&- &
	PIDS=$!
	wait_for 10 grep -q 'listening on' "$T/serve.err"
	url=$(sed -n 's|.*listening on \(http://[^/]*\)/.*|\1|p' "$T/serve.err")
	curl -sf "$url/" -o "$T/index.html"
	cmp "$T/index.html" "$R/usr/share/inv/www/index.html"
	# -v on a pipe: messages, but no progress or colour codes
	no_codes "$T/serve.err"
}

@test "no colour anywhere, NO_COLOR or not; invgen -v draws progress only on a terminal" {
	# not a terminal: no carriage return, no escape
	run --separate-stderr invgen -v -n 20 -r 0 --no-db
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 20 ]
	no_codes <<< "$stderr"
	printf '1\n2\n' | invbuf -v --no-redis -r 100 2> "$T/buf.err" > /dev/null
	printf '' | invstats -v --no-db --no-redis 2> "$T/stats.err"
	no_codes "$T/buf.err" "$T/stats.err"
	command -v script > /dev/null || skip "script(1) is not installed"
	# a terminal: the progress line is drawn, still without colour
	for nc in '' 1; do
		NO_COLOR=$nc script -qec "invgen -v -n 20 -r 100 --no-db > /dev/null" \
		    /dev/null < /dev/null > "$T/tty"
		grep -q $'\rinvgen: 20/20' "$T/tty"
		[ "$(grep -c $'\e' "$T/tty")" -eq 0 ]
	done
}

# units DIR: the units of share/systemd/ in DIR, their /usr/local/bin
# pointed at a tree installed under DIR/root, for systemd-analyze, which
# checks that every Exec command exists. Prints the man path of the tree.
units() {
	make -s -C "$ROOT" install PREFIX=/usr/local DESTDIR="$1/root" > /dev/null
	mkdir -p "$1/units"
	for u in "$ROOT"/share/systemd/*.service; do
		sed "s|/usr/local/bin/|$1/root/usr/local/bin/|g" "$u" > "$1/units/${u##*/}"
	done
	echo "$1/root/usr/local/share/man"
}
# unit_has UNIT KEY VALUE...: KEY=VALUE in UNIT, each VALUE a word of it.
unit_has() {
	local u=$1 key=$2 v line
	shift 2
	line=$(grep "^$key=" "$u" | cut -d= -f2- | tr '\n' ' ')
	for v in "$@"; do
		[[ " $line " == *" $v "* ]] || { echo "$u: no $key=$v in '$line'"; return 1; }
	done
}

@test "systemd-analyze verify: every unit is clean against an installed tree" {
	command -v systemd-analyze > /dev/null ||
	    skip "systemd-analyze is not installed (Debian's systemd package; make deps)"
	man=$(units "$T")
	# every long-lived program has a unit that runs it
	cat "$ROOT"/share/systemd/*.service > "$T/all"
	for p in $PROGS; do grep -q "^ExecStart=.*/usr/local/bin/$p " "$T/all"; done
	n=0
	for u in "$T"/units/*.service; do
		# its commands, its man pages (Documentation=) and every key
		run env MANPATH="$man" systemd-analyze verify "$u"
		echo "$u: $status: $output"
		[ "$status" -eq 0 ]
		[ -z "$output" ]
		n=$((n + 1))
	done
	[ "$n" -eq 3 ]
	# the check can fail: a misspelt key, a bad value, a missing program
	# or man page
	sed -e 's/^Restart=.*/Restart=sometimes/' -e 's/^ProtectHome=/ProtectHom=/' \
	    -e "s|^ExecStart=[^ ]*invserve|ExecStart=$T/root/usr/local/bin/nosuch|" \
	    -e 's/^Documentation=.*/Documentation=man:nosuch(1)/' \
	    "$T/units/inv-serve.service" > "$T/bad.service"
	run env MANPATH="$man" systemd-analyze verify "$T/bad.service"
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"restart specifier"*"sometimes"* ]]
	[[ "$output" == *"Unknown key 'ProtectHom'"* ]]
	[[ "$output" == *"nosuch is not executable"* ]]
	[[ "$output" == *"'man nosuch(1)' failed"* ]]
}

@test "systemd units: restarted, after PostgreSQL and Redis, sandboxed with /run/inv writable" {
	for u in "$ROOT"/share/systemd/*.service; do
		grep -Eqx 'Restart=(always|on-failure)' "$u"
		unit_has "$u" After postgresql.service redis-server.service
		unit_has "$u" Wants postgresql.service redis-server.service
		unit_has "$u" NoNewPrivileges yes
		unit_has "$u" ProtectSystem strict
		unit_has "$u" ProtectHome yes
		unit_has "$u" PrivateTmp yes
		unit_has "$u" EnvironmentFile /etc/inv/inv.env
		# the FIFO is in /run/inv, the only place a unit may write
		grep -q "^ExecStart=.* /run/inv" "$u"
		[ -z "$(grep '^ReadWritePaths=' "$u" | grep -vx 'ReadWritePaths=/run/inv')" ]
	done
	# the server halves own the directory; the producer may only write there
	unit_has "$ROOT/share/systemd/inv.service" RuntimeDirectory inv
	unit_has "$ROOT/share/systemd/inv-serve.service" RuntimeDirectory inv
	unit_has "$ROOT/share/systemd/inv-serve.service" RuntimeDirectoryPreserve yes
	unit_has "$ROOT/share/systemd/inv-producer.service" ReadWritePaths /run/inv
	unit_has "$ROOT/share/systemd/inv-producer.service" Requires inv-serve.service
	unit_has "$ROOT/share/systemd/inv-producer.service" After inv-serve.service

	command -v systemd-analyze > /dev/null ||
	    skip "systemd-analyze is not installed (Debian's systemd package; make deps)"
	# the sandbox as systemd scores it: exposure at most 2.0 of 10
	units "$T" > /dev/null
	for u in "$T"/units/*.service; do
		run systemd-analyze security --offline=true --threshold=20 "$u"
		echo "$u: $status: ${lines[-1]}"
		[ "$status" -eq 0 ]
	done
}
