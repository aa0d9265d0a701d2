# coco-stack's default kata-agent policy for peer-pod VMs (used when the pod's initdata brings
# no policy.rego; process-user-data writes /run/peerpod/policy.rego from initdata, and the
# agent reads that path: agent-config.toml policy_file). The agent evaluates
# data.agent_policy.<request type> for every ttRPC call and refuses what is not true
# (kata-containers src/agent/policy/src/policy.rs@4.0.0), so every request type of
# src/libs/protocols/protos/agent.proto@4.0.0 and of src/kata-opa/allow-all.rego@4.0.0 is
# listed. Secure by default: the untrusted host may run the pod, not look inside it; a pod that needs `kubectl exec` or `kubectl logs` brings
# its own policy in initdata (docs/images.md, "What the podvm image cannot do yet").

package agent_policy

default AddARPNeighborsRequest := true
default AddSwapPathRequest := true
default AddSwapRequest := true
default CloseStdinRequest := true
default CopyFileRequest := true
default CreateContainerRequest := true
default CreateSandboxRequest := true
default DestroySandboxRequest := true
default ExecProcessRequest := false  # the host could run commands inside the confidential container
default GetDiagnosticDataRequest := true
default GetIPTablesRequest := true
default GetMetricsRequest := true
default GetOOMEventRequest := true
default GuestDetailsRequest := true
default ListInterfacesRequest := true
default ListRoutesRequest := true
default MemAgentCompactConfig := true
default MemAgentMemcgConfig := true
default MemHotplugByProbeRequest := true
default OnlineCPUMemRequest := true
default PauseContainerRequest := true
default PullImageRequest := true
default ReadStreamRequest := false  # the host could read the container's stdout and stderr
default RemoveContainerRequest := true
default RemoveStaleVirtiofsShareMountsRequest := true
default ReseedRandomDevRequest := true
default ResizeVolumeRequest := true
default ResumeContainerRequest := true
default SetGuestDateTimeRequest := true
default SetIPTablesRequest := true
default SetPolicyRequest := false  # the host could replace this policy at run time
default SignalProcessRequest := true
default StartContainerRequest := true
default StartTracingRequest := true
default StatsContainerRequest := true
default StopTracingRequest := true
default TtyWinResizeRequest := true
default UpdateContainerRequest := true
default UpdateEphemeralMountsRequest := true
default UpdateInterfaceRequest := true
default UpdateRoutesRequest := true
default VolumeStatsRequest := true
default WaitProcessRequest := true
default WriteStreamRequest := true
