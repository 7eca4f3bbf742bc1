# bash completion for inv: invgen, invstats, invbuf, invserve, invctl.
# Installed once and linked under each program's name in
# share/bash-completion/completions/, or sourced from ~/.bashrc.
# Self-contained: it works without the bash-completion package.

# _inv_flags PROG [SUBCOMMAND]: the flags PROG accepts, on one line.
_inv_flags()
{
	case $1${2:+ $2} in
	invgen)
		echo -r --rate -d --duration -n --count -s --seed --start-time \
		    --db --no-db --retry-for --wait --redis \
		    -q --quiet -v --verbose -h --help --version ;;
	invstats)
		echo --resume --db --no-db --redis --no-redis \
		    -q --quiet -v --verbose -h --help --version ;;
	invbuf)
		echo -r --rate --redis --no-redis --max-line --mem-lines \
		    --mem-bytes -q --quiet -v --verbose -h --help --version ;;
	invserve)
		echo -l --listen -i --input --source --www --backfill \
		    --max-clients --client-queue --ring --allow-origin --db \
		    --redis -q --quiet -v --verbose -h --help --version ;;
	invctl)
		echo -h --help --version ;;
	"invctl start")
		echo -r --rate -d --duration --redis ;;
	"invctl stop")
		echo --redis ;;
	"invctl status")
		echo -w --watch --redis ;;
	"invctl up")
		echo -q --quiet --rundir --display-rate -l --listen ;;
	"invctl down")
		echo --rundir ;;
	esac
}

# _inv_argument FLAG: what FLAG's argument is (file, dir, a word list, or
# "value" for a number or URL to be typed), or nothing for a plain flag.
_inv_argument()
{
	case $1 in
	-i|--input)
		echo file ;;
	--www|--rundir)
		echo dir ;;
	--source)
		echo "word redis input" ;;
	-r|--rate|-d|--duration|-n|--count|-s|--seed|--start-time|--db|\
	--retry-for|--redis|--max-line|--mem-lines|--mem-bytes|-l|--listen|\
	--backfill|--max-clients|--client-queue|--ring|--allow-origin|\
	--display-rate)
		echo value ;;
	esac
}

_inv()
{
	local prog=${COMP_WORDS[0]##*/} cur=${COMP_WORDS[COMP_CWORD]}
	local prev= sub= i w arg
	[ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD-1]}
	COMPREPLY=()

	# The subcommand: invctl's first word; invstats's show or rebuild.
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		case $w in
		-*) [ "$(_inv_argument "$w")" ] && ((i++)) ;;
		*) sub=$w; break ;;
		esac
	done
	[ "$prog" = invstats ] && sub=

	# A flag's argument: a path, a fixed word, or nothing to offer.
	arg=$(_inv_argument "$prev")
	case $arg in
	file|dir)
		compopt -o filenames 2>/dev/null
		local IFS=$'\n'
		COMPREPLY=($(compgen -"${arg:0:1}" -- "$cur")); return ;;
	word\ *)
		COMPREPLY=($(compgen -W "${arg#word }" -- "$cur")); return ;;
	value)
		return ;;
	esac

	if [ "$prog" = invctl ] && [ -z "$sub" ]; then
		case $cur in
		-*) COMPREPLY=($(compgen -W "$(_inv_flags invctl)" -- "$cur")) ;;
		*) COMPREPLY=($(compgen -W "start stop status up down" -- "$cur")) ;;
		esac
		return
	fi
	case $cur in
	-*)
		COMPREPLY=($(compgen -W "$(_inv_flags "$prog" $sub)" -- "$cur")) ;;
	*)
		[ "$prog" = invstats ] &&
			COMPREPLY=($(compgen -W "show rebuild" -- "$cur")) ;;
	esac
}

complete -F _inv invgen invstats invbuf invserve invctl
