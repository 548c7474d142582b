package main

import (
	"fmt"
	"strings"
)

var verbs = []string{"up", "down", "plan", "status", "validate", "exec", "ovs", "logs", "capture", "check", "graph", "flows", "impair", "link", "partition", "heal", "timeline", "sandbox", "doctor", "completion", "version"}

// bashCompletion completes verbs, topology files for verbs that take one, and
// running labs (from `netlab status --json`'s lab names via /run/netlab).
const bashCompletion = `# bash completion for netlab: source <(netlab completion bash)
_netlab() {
  local cur=${COMP_WORDS[COMP_CWORD]} verb=${COMP_WORDS[1]}
  if [[ $COMP_CWORD == 1 ]]; then
    COMPREPLY=($(compgen -W "%s" -- "$cur")); return
  fi
  case $verb in
    up|plan|validate|graph)
      COMPREPLY=($(compgen -f -X '!*.y*ml' -- "$cur") $(compgen -d -- "$cur")) ;;
    down|status|exec|ovs|logs|capture|check|flows|heal)
      local labs=$(ls /run/netlab/labs 2>/dev/null)
      if [[ $COMP_CWORD == 2 ]]; then
        COMPREPLY=($(compgen -W "$labs --all" -- "$cur") $(compgen -f -X '!*.y*ml' -- "$cur"))
      elif [[ $verb == exec && $COMP_CWORD == 3 ]]; then
        COMPREPLY=($(compgen -W "$(ip netns list 2>/dev/null | cut -d' ' -f1)" -- "$cur"))
      fi ;;
    impair)
      if [[ $COMP_CWORD == 2 ]]; then
        COMPREPLY=($(compgen -W "$(ls /run/netlab/labs 2>/dev/null)" -- "$cur"))
      elif [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "--rate --delay --jitter --loss --duplicate --corrupt --reorder --limit --clear --reset" -- "$cur"))
      elif [[ $COMP_CWORD == 3 ]]; then
        COMPREPLY=($(compgen -W "$(ip netns list 2>/dev/null | cut -d' ' -f1)" -- "$cur"))
      fi ;;
    link|partition)
      if [[ $COMP_CWORD == 2 ]]; then
        COMPREPLY=($(compgen -W "$(ls /run/netlab/labs 2>/dev/null)" -- "$cur"))
      elif [[ $verb == link && $COMP_CWORD == 4 ]]; then
        COMPREPLY=($(compgen -W "down up --reset" -- "$cur"))
      elif [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "--reset --oneway --name" -- "$cur"))
      fi ;;
    timeline)
      if [[ $COMP_CWORD == 2 ]]; then
        COMPREPLY=($(compgen -W "$(ls /run/netlab/labs 2>/dev/null)" -- "$cur"))
      elif [[ $COMP_CWORD == 3 ]]; then
        COMPREPLY=($(compgen -W "status start stop log" -- "$cur"))
      elif [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "--reset --json" -- "$cur"))
      fi ;;
    sandbox) [[ $COMP_CWORD == 2 ]] && COMPREPLY=($(compgen -W "ls rm create exec run" -- "$cur")) ;;
    completion) COMPREPLY=($(compgen -W "bash zsh" -- "$cur")) ;;
  esac
}
complete -o filenames -F _netlab netlab
`

// completion: netlab completion bash|zsh.
func (a *app) completion(args []string) int {
	if len(args) != 1 || (args[0] != "bash" && args[0] != "zsh") {
		fmt.Fprintln(a.stderr, "Usage: netlab completion bash|zsh   (then: source <(netlab completion bash))")
		if wantsHelp(args) {
			return exitOK
		}
		return exitUsage
	}
	script := fmt.Sprintf(bashCompletion, strings.Join(verbs, " "))
	if args[0] == "zsh" {
		// zsh runs bash completion functions through bashcompinit.
		script = "autoload -U +X bashcompinit && bashcompinit\n" + script
	}
	fmt.Fprint(a.stdout, script)
	return exitOK
}
