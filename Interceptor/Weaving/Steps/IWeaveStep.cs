namespace SockShim.Interceptor.Weaving.Steps;

/// <summary>One named change to System.Net.Sockets. Steps run in order over one context.</summary>
public interface IWeaveStep
{
    string Name { get; }
    void Apply(WeaveContext context);
}
