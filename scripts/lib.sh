# Shared by the scripts that read sid's one-line JSON results (sourced, not run).
# field JSON KEY: the number after "KEY": in a one-line JSON object.
field() { sed -E "s/.*\"$2\": ([0-9.eE+-]+).*/\1/" <<<"$1"; }
# json_number FILE KEY: the same for a pretty-printed JSON file (a run's config.json).
json_number() { printf '%g' "$(tr -d '\n\t ' < "$1" | sed -E "s/.*\"$2\":([0-9.eE+-]+).*/\1/")"; }
