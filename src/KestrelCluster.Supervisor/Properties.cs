using System.Runtime.Versioning;

// SCM_RIGHTS, SO_PEERCRED and /proc: the supervisor is Linux-only.
[assembly: SupportedOSPlatform("linux")]
