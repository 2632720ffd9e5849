package fake

import (
	"fmt"

	"github.com/aws/smithy-go"
)

// apiError is how the SDK surfaces an EC2 error answer to code that
// classifies errors through smithy.APIError.
func apiError(code, format string, args ...any) error {
	return &smithy.GenericAPIError{Code: code, Message: fmt.Sprintf(format, args...), Fault: faultOf(code)}
}

// faultOf tells server-side failures apart, as EC2's 5xx answers are.
func faultOf(code string) smithy.ErrorFault {
	switch code {
	case "InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable":
		return smithy.FaultServer
	}
	return smithy.FaultClient
}

func injected(code string) error {
	return apiError(code, "injected by the fake")
}

func dryRun(flag *bool) error {
	if flag != nil && *flag {
		return apiError("DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
	}
	return nil
}

func missingParameter(name string) error {
	return apiError("MissingParameter", "The request must contain the parameter %s", name)
}

func invalidValue(format string, args ...any) error {
	return apiError("InvalidParameterValue", format, args...)
}

func allocationNotFound(id string) error {
	return apiError("InvalidAllocationID.NotFound", "The allocation ID '%s' does not exist", id)
}

func eniNotFound(id string) error {
	return apiError("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", id)
}
