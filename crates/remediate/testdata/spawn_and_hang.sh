#!/bin/sh
# Starts a background child, writes its pid to $1, then hangs: a timeout must
# kill both (the whole process group).
sleep 300 &
echo $! > "$1"
sleep 300
