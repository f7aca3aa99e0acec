package allocator

import (
	"errors"
	"fmt"
)

// ResultCode is a result code of the C ABI (ta_result). Values never change meaning.
type ResultCode uint32

// Result codes, as in target_allocator.h.
const (
	OK                 ResultCode = 0
	NullArgument       ResultCode = 1
	InvalidUTF8        ResultCode = 2
	InvalidConfig      ResultCode = 3
	UnknownCollector   ResultCode = 4
	DuplicateCollector ResultCode = 5
	EmptyCollectorName ResultCode = 6
	UnknownTarget      ResultCode = 7
	ConflictingTarget  ResultCode = 8
	DuplicateLabel     ResultCode = 9
	MissingAddress     ResultCode = 10
	RingCapacity       ResultCode = 11
	Capacity           ResultCode = 12
	BufferTooSmall     ResultCode = 13
	InvalidSnapshot    ResultCode = 14
	InternalError      ResultCode = 15
	InvalidArgument    ResultCode = 16
)

// Error is a failure reported by the engine: its result code and a message naming the input
// that caused it.
type Error struct {
	Code    ResultCode
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("allocator: %s (code %d)", e.Message, e.Code)
}

// Is lets errors.Is match on the code: errors.Is(err, &allocator.Error{Code: allocator.UnknownCollector}).
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code && t.Message == ""
}

// ErrClosed is returned by every method of an Allocator after Close.
var ErrClosed = errors.New("allocator: use of a closed Allocator")
