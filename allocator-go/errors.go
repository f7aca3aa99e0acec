package allocator

import (
	"errors"
	"fmt"
)

// ResultCode is a result code of the C ABI (ta_result); the values, names and messages are
// generated from the library's one table (codes.go).
type ResultCode uint32

// String is the code's name as in target_allocator.h ("TA_UNKNOWN_TARGET").
func (c ResultCode) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("ResultCode(%d)", uint32(c))
}

// Message is a short sentence saying what the code means.
func (c ResultCode) Message() string {
	if int(c) < len(codeMessages) {
		return codeMessages[c]
	}
	return "unknown result code"
}

// Error is a failure reported by the engine: its result code and a message naming the input
// that caused it.
type Error struct {
	Code    ResultCode
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("allocator: %s (%s)", e.Message, e.Code)
}

// Is lets errors.Is match on the code: errors.Is(err, &allocator.Error{Code: allocator.UnknownCollector}).
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code && t.Message == ""
}

// ErrClosed is returned by every method of an Allocator after Close.
var ErrClosed = errors.New("allocator: use of a closed Allocator")
