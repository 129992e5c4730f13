//go:build unix

package main

import "syscall"

// restrictUmask makes the files the process creates 0600 and its
// directories 0700, whatever the mode a library asks for.
func restrictUmask() { syscall.Umask(0o077) }
