-- lacos repl: the interactive REPL (lua/lacos/repl.lua). `lacos`, `lacos repl`
-- and `lacos -i FILE.lua` start it; cli.lua prints `help` for --help.
local M = {}

M.help = [[
usage: lacos repl          (also: lacos, and lacos -i FILE.lua to keep a script's globals)

The interactive Lua REPL with the lacos modules loaded (`lacos` is a global).
Expressions print their value (a trailing ';' hides it); unfinished statements
continue on the next line; errors print a traceback and the REPL goes on.
  _, _LAST          the last result; _RESULTS[i] the i-th (the last 10 kept)
  ?name             help: ?lacos.tensor.zeros (Lua), ?lacos_tensor_matmul (engine C)
  ?                 the REPL's help
  who()             your globals
  $ command         run a shell command
  :time on|off      print the wall and CPU time of each statement
  :quit             leave (also Ctrl-D)

On a terminal: line editing through libedit (~/.editrc, lines for this program
prefixed "lacos:"), Tab completion of globals, of fields after '.', methods
after ':' and file names inside strings, history kept in
$XDG_STATE_HOME/lacos/history (or ~/.lacos_history; LACOS_HISTORY overrides,
empty disables), colour unless NO_COLOR is set. Ctrl-C clears the line or stops
the running statement; Ctrl-D leaves.

When stdin is not a terminal (a pipe, a file) it reads plain lines and prints
only the results, errors going to stderr: `echo 'x = 1+1; x' | lacos` prints 2.
It goes on after an error and exits with status 1 if any statement failed.

environment: LACOS_HISTORY (history file), LACOS_LIBEDIT (libedit to load;
a missing one gives plain line reading), NO_COLOR.]]

return M
